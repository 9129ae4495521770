"""The verdict's deciding numbers and the noise their differences are judged against.

    se(rep, i, R)                 # a row's standard error of its validation R-loss
    compare(rep, a, b, [R, FID])  # how row b differs from row a, beyond noise or not

Noise: a row with several seeds, the standard error of its mean over them (training noise and the
estimators' together); a row with one seed, where other rows have several, the pooled seed spread
(the standard deviation over seeds, pooled over the rows with several: what one seed may move);
with one seed everywhere, each estimator's own standard error over the validation images (R-loss,
−ELBO) or the prior samples (FID, a bootstrap: vae/fid.py), which leaves training noise out.
"""

from __future__ import annotations

import math

from pipelines.report.data import Report

Z_SE = 2.0
"""a difference counts as beyond noise when larger than this many standard errors."""
# deciding numbers: the table's hidden columns (pipelines/report/data.py METRICS), their standard errors
R, FID, ELBO = "_val_r_loss", "_val_fid", "_val_elbo_bpd"
NAMES = {R: "validation R-loss", FID: "validation FID", ELBO: "validation −ELBO (bits/dim)"}


def fmt(v: float) -> str:
    return f"{v:.4g}"


def pooled_sd(rep: Report, col: str) -> float | None:
    """The standard deviation of `col` over seeds, pooled over the rows with several seeds
    (sqrt of sum (n_i - 1) s_i^2 / sum (n_i - 1)); None where no row has several."""
    if col not in rep.std:
        return None
    n = rep.table["Seeds"].astype(int)
    s = rep.std[col]
    use = (n > 1) & s.notna()
    if not use.any():
        return None
    return math.sqrt(float(((n[use] - 1) * s[use] ** 2).sum()) / float((n[use] - 1).sum()))


def se(rep: Report, i, col: str) -> float:
    """Standard error of a row's mean of `col`: over its seeds where several ran; for one seed, the
    pooled seed spread where other rows have several; else the estimator's own."""
    seeds = int(rep.table.at[i, "Seeds"])
    if seeds > 1 and col in rep.std and not math.isnan(rep.std.at[i, col]):
        return float(rep.std.at[i, col]) / math.sqrt(seeds)
    pooled = pooled_sd(rep, col)
    if pooled is not None:
        return pooled
    se = f"{col}_se"
    return float(rep.table.at[i, se]) if se in rep.table and not math.isnan(rep.table.at[i, se]) else 0.0


def compare(rep: Report, a, b, cols: list[str]) -> tuple[list[str], bool, bool]:
    """How row b differs from row a on each deciding number: (phrases, b worse beyond noise on any,
    b better beyond noise on any)."""
    t, phrases, worse, better = rep.table, [], False, False
    for col in cols:
        diff = float(t.at[b, col] - t.at[a, col])
        noise = math.hypot(se(rep, a, col), se(rep, b, col))
        beyond = abs(diff) > Z_SE * noise
        worse |= beyond and diff > 0
        better |= beyond and diff < 0
        rel = f" ({diff / t.at[a, col]:+.1%})" if col != ELBO else ""
        phrases.append(f"{NAMES[col]} {diff:+.4g}{rel}, noise threshold ±{Z_SE * noise:.2g} (2 standard errors): "
                       + ("beyond noise" if beyond else "within noise"))
    return phrases, worse, better


def noise_text(rep: Report, cols: list[str]) -> str:
    """What the margins are judged against, in words."""
    seeds = rep.table["Seeds"].astype(int)
    if seeds.max() == 1:
        return "each estimator's own standard error over the validation images (and, for FID, the samples)"
    pooled = [f"{NAMES[c]} ±{fmt(p)}" for c in cols if (p := pooled_sd(rep, c)) is not None]
    several = int((seeds > 1).sum())
    where = "every row" if several == len(seeds) else f"{several} of {len(seeds)} rows"
    return (f"{seeds.max()} seeds at {where}: margins are judged against the standard error over seeds (training "
            "and estimator noise together)"
            + (f"; a one-seed row against the pooled seed spread ({', '.join(pooled)}: what one seed may move)"
               if (seeds == 1).any() and pooled else ""))
