"""What the verdict says besides its answer: the z-dim's evidence, the continuum, the warnings.

    warnings_of(rep, v, chosen, alive, histories, excluded)   # "undertrained: ...", "edge: ...", ...

Each warning says what is weak and, where there is one, the command that makes it stronger.
"""

from __future__ import annotations

from pipelines.report.data import Report, label
from pipelines.report.noise import compare

UNIFORM_BPD = 8.0
"""bits/dim of a uniform model of 8-bit pixels: a model worse than this has learned nothing useful."""
STILL_FALLING = 0.01
"""a validation −ELBO that fell by more than this fraction over the last fifth of the epochs."""


def still_falling(histories: dict[str, list[float]], run: str) -> str | None:
    h = histories.get(run)
    if not h:
        return None
    if len(h) < 2:
        return f"trained {len(h)} epoch: whether it converged cannot be told"
    k = max(1, round(len(h) / 5))
    drop = (h[-1 - k] - h[-1]) / abs(h[-1 - k])
    if drop > STILL_FALLING:
        return f"its validation −ELBO still fell {drop:.1%} over " + (f"the last {k} epochs" if k > 1 else "its last epoch")
    return None


def z_dim_answer(rep: Report, chosen, best_per_z: dict, cols: list[str], n: dict) -> str:
    t = rep.table
    z = int(t.at[chosen, "Z-dim"])
    parts = []
    for other in sorted(best_per_z):
        if other == z:
            continue
        phrases, worse, better = compare(rep, chosen, best_per_z[other], cols)
        verdict = "worse beyond noise" if worse else "better beyond noise" if better else "within noise"
        parts.append(f"z-dim {other}'s best ({label(t.loc[best_per_z[other]])}) is {verdict} ({'; '.join(phrases)})"
                     + (", and a larger latent is chosen only when it buys something measurable"
                        if other > z and not worse and not better else ""))
    parts = [f"z-dim {z}" + (f": {parts[0]}" if parts else ": the only z-dim tried"), *parts[1:]]
    au = n.get("diag/active_units")
    if au is not None:
        if au < 0.9 * z:
            parts.append(f"the chosen model uses {au:.0f} of its {z} dimensions (active units): a z-dim near "
                         f"{max(1, round(au))} may do as well (not tried; retune beta with it: one beta is another "
                         f"balance at another z-dim, σ implied = √(β·D/2z))")
        elif z == max(best_per_z):
            parts.append(f"it uses {au:.0f} of {z} dimensions and is the largest z-dim tried: a larger z-dim may help")
        else:
            parts.append(f"it uses {au:.0f} of {z} dimensions (active units)")
    return "; ".join(parts)


def continuum_of(continua: dict, v: dict, kind: str, info: dict) -> dict:
    """{z-dim: the continuum's judgement (pipelines/report/continuum.py), with the command that trains
    its best beta independently where it beats the grid}, for the chosen z-dim."""
    from pipelines.report.continuum import judge
    from pipelines.report.extend import _quote

    scans = continua.get(v["z_dim"])
    c = judge(scans, kind) if scans else None
    if c is None:
        return {}
    if c["beats_grid"]:
        parts = ["vae sweep", info.get("spec_file") or "SPEC", *[f"--set {_quote(o)}" for o in info.get("overrides", [])],
                 f"--set study={v['study']}-beyond", "--set mode=independent",
                 f"--set 'search.beta=[{c['best_beta']:.3g}]'", f"--set 'search.z_dim=[{v['z_dim']}]'",
                 "--set 'search.loss=[beta]'"]
        c["command"] = " ".join(parts)
    return {str(v["z_dim"]): c}


def given_up(info: dict) -> list[str]:
    """The configurations given up (no run in the table: their attempts killed their workers)."""
    out = []
    for g in info.get("given_up", []):
        what = "σ-VAE" if g.get("beta") is None else f"beta {g['beta']:g}"
        out.append(f"left out, given up: z-dim {g.get('z_dim')}, {what} (seed {g.get('seed', 0)}): "
                   f"{g['reason'].removeprefix('given up: ')}")
    return out


def seeds_command(info: dict) -> str:
    from pipelines.report.extend import _quote

    parts = ["vae sweep", info.get("spec_file") or "SPEC", *[f"--set {_quote(o)}" for o in info.get("overrides", [])]]
    return " ".join([*parts, "--set 'confirm={top: 2, seeds: 3}'"])


def warnings_of(rep, v, chosen, alive, histories, excluded) -> list[str]:
    out = []
    note = still_falling(histories, v["run"])
    if note:
        out.append(f"undertrained: {note}; train longer (epochs) before trusting the verdict")
    falling = sum(still_falling(histories, r) is not None for r in rep.runs["tags.mlflow.runName"])
    if falling > (1 if note else 0):
        out.append(f"{falling} of {len(rep.runs)} models were still improving at their last epoch")
    nll = v["numbers"].get("diag/nll_bpd")
    if nll is not None and nll > UNIFORM_BPD:
        out.append(f"the chosen model's NLL ({nll:.3f} bits/dim) is worse than a uniform model of the pixels "
                   f"({UNIFORM_BPD:g} bits/dim): the models have barely learned the data")
    if excluded:
        out.append(f"left out as collapsed (AU = 0 or KL < 0.01 nats): {'; '.join(excluded)}")
    if int(rep.table["Seeds"].max()) == 1:  # with seeds somewhere, a one-seed row counts their pooled spread
        out.append("one seed: the noise above leaves out training noise; "
                   f"`{v['seeds_command']}` adds seeds to the finalists of this study and decides again")
    if v.get("runner_up") and not v["runner_up"]["beyond_noise"]:
        out.append(f"the runner-up ({v['runner_up']['label']}) is within noise on every deciding number: "
                   "the choice between them is not settled by this study")
    for name, word in (("beta", "beta"), ("z_dim", "z-dim")):
        if v["extend"][name]:
            out.append(f"edge: {'; '.join(v['extend_why'][name])}; try {word} "
                       f"{', '.join(f'{x:g}' for x in v['extend'][name])}: `{v['extend_command'][name]}` "
                       + ("trains them" if v["training"] == "conditional" and name == "beta" else "grows the study to them"))
    if len(alive) == 1:
        out.append("only one model could be compared")
    return out


def optuna_note(best: dict, v: dict, rep: Report, parsimony: bool) -> dict:
    from pipelines.common.metrics import BETA_BIASED
    from vae.collapse import collapsed

    runs = rep.runs[rep.runs["tags.vae.trial"].astype(int) == best["trial"]]
    dead = any(collapsed(r.get("metrics.diag/active_units"), r.get("metrics.test/kl")) for _, r in runs.iterrows())
    same = best["trial"] == v["trial"]
    if same:
        why = "Optuna's best trial is the verdict's"
    elif dead:
        why = "that model collapsed (AU = 0 or KL < 0.01 nats), and the verdict leaves collapsed models out"
    elif best["metric"] in BETA_BIASED:
        why = (f"its objective {best['metric']} moves with beta by construction (R + β·KLD) and is on another "
               "scale for a σ-VAE, so it cannot compare betas; the verdict uses the rule above")
    elif v["kind"] == "balance":
        why = f"Optuna ranks by {best['metric']} alone; the verdict weighs generation too (FID)"
    elif parsimony:
        why = f"Optuna ranks by {best['metric']} alone; the verdict prefers the smallest z-dim within noise"
    else:
        why = (f"Optuna ranks single trials by {best['metric']}; the verdict ranks each configuration's mean over "
               "its seeds, on the validation −ELBO")
    return {**best, "same": same, "why": why}
