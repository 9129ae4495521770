"""Posterior collapse: one definition for `vae train`, `vae status`, the report and its recommendations.

A model has collapsed when no latent dimension is active (AU = 0, Burda et al., 2016) or its rate
is negligible, KL(q(z|x) || p(z)) < 0.01 nats per image: the decoder then ignores z and every
reconstruction is the same mean image.
"""

from __future__ import annotations

import math

COLLAPSE_KL_NATS = 0.01
"""Rate (total KL per image, nats) below which a model counts as collapsed."""


def collapsed(active_units: float | None, kl_nats: float | None) -> bool:
    """True when AU = 0 or KL < COLLAPSE_KL_NATS; unknown values (None, NaN) do not count."""
    known = [v for v in (active_units, kl_nats) if v is not None and not math.isnan(v)]
    if not known:
        return False
    return (active_units is not None and not math.isnan(active_units) and active_units == 0) or (
        kl_nats is not None and not math.isnan(kl_nats) and kl_nats < COLLAPSE_KL_NATS)
