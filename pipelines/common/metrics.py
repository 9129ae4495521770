"""The metric names a trial reports, and which of them may choose models: the sweep's objectives.

    "val/elbo_bpd" in OBJECTIVES      # True: the validation split chooses
    "val/loss" in BETA_BIASED         # True: R + β·KLD moves with beta by construction
"""

from __future__ import annotations

# what `vae.train` reports (tests/test_spec.py checks this against a real run); `diag/` only at the end,
# the generation metrics only with fid_samples > 0 and the [fid] extra
_TERMS = ("loss", "r_loss", "kld_loss", "sse", "kl")
# with the [fid] extra and fid_samples > 0; val/fid only where validation images were given
GENERATION_METRICS = {f"diag/{k}" for k in ("fid", "fid_recon", "kid", "precision", "recall", "fid_samples",
                                            "fid_reference")} | {"val/fid", "val/fid_se", "val/fid_reference"}
METRICS = ({f"train/{t}" for t in _TERMS}
           | {f"{split}/{t}" for split in ("val", "test", "test_subset")
              for t in (*_TERMS, "elbo_bpd", "r_loss_se", "elbo_bpd_se")}
           | {"train/beta"}
           | {f"diag/{k}" for k in ("active_units", "neg_elbo_nats", "elbo_bpd", "nll_nats", "nll_bpd", "mi_nats",
                                    "mi_se_nats", "mi_ceiling_nats", "mi_saturated", "rate_minus_mi", "sigma_mle",
                                    "sigma_implied", "eval_images", "iw_images", "r_loss", "kl_nats")}
           | GENERATION_METRICS)
# objectives and pruning choose models, so they read the training or validation split only: the test
# split (test/ at the end, test_subset/ and diag/ on its evaluation subset) reports them. Standard errors
# and the end-only val/fid are measurements of a model, not per-epoch objectives.
OBJECTIVES = {m for m in METRICS if m.startswith(("train/", "val/")) and not m.endswith(("_se", "_reference"))
              and m != "val/fid"}
# R + beta*KLD falls as beta falls, and its terms move with beta by construction; a sigma-VAE's loss
# is a Gaussian NLL on another scale: none of these can choose between betas (or against a sigma-VAE)
BETA_BIASED = {f"{split}/{t}" for split in ("train", "val") for t in _TERMS}
BETA_FREE = ("val/elbo_bpd",)
"""objectives that compare betas and sigma-VAEs: the negative ELBO in bits/dim with the decoder's
sigma fitted (vae/metrics.py calibrated_neg_elbo), on the validation split."""
