"""The edge of the searched range: where the verdict's choice sits at the end of what was searched,
the best may lie beyond it; propose concrete values there, and the command that grows the study.

    ext = extend(rep, alive, chosen)   # {"beta": [0.0025, 0.001], "z_dim": [], "why": {"beta": [...], ...}}

Beta: the chosen beta is the smallest or the largest searched at its z-dim among the rows that did
not collapse; or the chosen row is a σ-VAE, whose fitted σ (σ² = its validation R-loss, the MSE
per pixel: Rybkin et al., 2021) stands for β = 2σ²·z/D (vae/metrics.py `sigma_implied` read
backwards), and that beta lies outside the searched ones. The proposals step on past the end by
the grid's own ratio there (the end beta over its neighbour), held between 2 and √10, rounded to
1, 2, 2.5 or 5 × 10^k; two values past an end beta, up to three towards a σ-VAE's implied one; a
collapsed beta beyond the end caps them (the geometric middle instead). Z-dim: the chosen z-dim is
the largest searched and its model uses every dimension (active units): propose twice it.
"""

from __future__ import annotations

import math

import pandas as pd

NICE = (1.0, 2.0, 2.5, 5.0)
MIN_STEP, MAX_STEP = 2.0, math.sqrt(10.0)


def nice(x: float) -> float:
    """The nearest (in log) of 1, 2, 2.5, 5 × 10^k: 0.00125 -> 0.001, 0.0316 -> 0.025."""
    k = math.floor(math.log10(x))
    options = [m * 10.0 ** e for e in (k - 1, k, k + 1) for m in NICE]
    best = min(options, key=lambda o: abs(math.log(o / x)))
    return float(f"{best:.3g}")


def _step(betas: list[float], end: float) -> float:
    others = [b for b in betas if b != end and b > 0]
    if not others or end <= 0:
        return MAX_STEP
    near = min(others, key=lambda b: abs(math.log(b / end)))
    return min(MAX_STEP, max(MIN_STEP, math.exp(abs(math.log(near / end)))))


def _beyond(end: float, step: float, down: bool, n: int, target: float | None, cap: float | None) -> list[float]:
    """Up to `n` values past `end` by `step`, stopping once past `target`, never at or past `cap`
    (a collapsed beta: then the geometric middle of end and cap)."""
    if cap is not None:
        return [math.sqrt(end * cap)]
    out, v = [], end
    while len(out) < n:
        v = v / step if down else v * step
        out.append(v)
        if target is not None and (v <= target if down else v >= target):
            break
    return out


def implied_beta(rep, i) -> float | None:
    """The beta a σ-VAE row's fitted σ stands for: 2σ²·z/D, σ² its validation R-loss (MSE per
    pixel), D = SSE / R-loss on the test split (the pixels per image)."""
    t = rep.table
    r_val = t.at[i, "_val_r_loss"] if "_val_r_loss" in t else float("nan")
    if "SSE" not in t or pd.isna(r_val) or pd.isna(t.at[i, "SSE"]) or not t.at[i, "R-loss"]:
        return None
    d = float(t.at[i, "SSE"]) / float(t.at[i, "R-loss"])
    return 2.0 * float(r_val) * int(t.at[i, "Z-dim"]) / d


def extend(rep, alive: pd.DataFrame, chosen) -> dict:
    """{"beta": [...], "z_dim": [...], "why": {"beta": [sentences], "z_dim": [...]}}: empty lists when
    the choice is inside the range."""
    t = rep.table
    z = int(t.at[chosen, "Z-dim"])
    same_z = t[(t["Z-dim"] == z) & (t["Loss"] == "beta")]
    searched = sorted(float(b) for b in same_z["Beta"].dropna())
    ok = sorted(float(b) for b in same_z.loc[same_z.index.isin(alive.index), "Beta"].dropna())
    dead = [float(b) for b in same_z.loc[rep.dead[same_z.index], "Beta"].dropna()]
    out: dict = {"beta": [], "z_dim": [], "why": {"beta": [], "z_dim": []}}
    if ok:
        lo, hi = ok[0], ok[-1]
        if t.at[chosen, "Loss"] == "beta":
            b = float(t.at[chosen, "Beta"])
            sides = [(down, b) for down in (True, False) if b == (lo if down else hi)]
            if len(ok) == 1:
                sides = [(True, b), (False, b)]
            for down, end in sides:
                cap = max((d for d in dead if d < end), default=None) if down else min((d for d in dead if d > end),
                                                                                        default=None)
                n = 1 if len(ok) == 1 else 2
                out["beta"] += _beyond(end, _step(searched, end), down, n, None, cap)
                out["why"]["beta"].append(f"the chosen beta {b:g} is the {'smallest' if down else 'largest'} searched at z-dim "
                                  f"{z}" + (f" (beta {cap:g} beyond it collapsed)" if cap is not None else "")
                                  + f": the best may lie {'below' if down else 'above'} it")
        else:
            implied = implied_beta(rep, chosen)
            if implied is not None and not lo <= implied <= hi:
                down = implied < lo
                end = lo if down else hi
                out["beta"] += _beyond(end, _step(searched, end), down, 3, implied, None)
                sigma = math.sqrt(float(t.at[chosen, "_val_r_loss"]))
                out["why"]["beta"].append(f"the chosen σ-VAE's fitted σ {sigma:.3g} stands for β ≈ {implied:.2g} at z-dim {z} "
                                  f"(2σ²·z/D), {'below the smallest' if down else 'above the largest'} beta searched "
                                  f"({end:g})")
    have = set(searched)
    out["beta"] = sorted({v for v in map(nice, out["beta"]) if v not in have and v > 0})
    au = t.at[chosen, "AU"] if "AU" in t else float("nan")
    if z == int(t["Z-dim"].max()) and not pd.isna(au) and au >= z:
        out["z_dim"] = [2 * z]
        out["why"]["z_dim"].append(f"z-dim {z} is the largest searched and its model uses all {z} dimensions (active units)")
    return out


def commands(spec_file: str | None, overrides: list[str], study_search: dict, ext: dict,
             conditional: bool = False, study: str = "") -> dict[str, str]:
    """Per dimension with proposals, the command that grows the study to them (its list with them
    added); for the betas of a β-conditional study, whose betas are fixed, a new independent study
    of them at the chosen z-dim."""
    base = ["vae sweep", spec_file or "SPEC", *[f"--set {_quote(o)}" for o in overrides]]
    out = {}
    for name in ("beta", "z_dim"):
        if not ext[name]:
            continue
        old = [] if conditional and name == "beta" else list(study_search.get(name) or [])
        values = old + [v for v in ext[name] if v not in old]
        cmd = [*base, f"--set 'search.{name}={_list(values)}'"]
        if conditional and name == "beta":
            cmd += [f"--set study={study}-beyond", "--set mode=independent", "--set 'search.loss=[beta]'"]
        out[name] = " ".join(cmd)
    return out


def _list(values) -> str:
    return "[" + ", ".join(f"{v:g}" for v in values) + "]"


def _quote(override: str) -> str:
    return f"'{override}'" if any(c in override for c in " []{}*$;&|") else override
