"""When a curve-shape check cannot fail (issue 28, part 4): such a check is reported as SKIP with the reason, never
as PASS, and counted apart from the checks that were judged.

A calibrated tolerance can be so wide that no outcome would FAIL it: on the embedded smoke profile the peak-layer
allowance of some weak curves is 16-23 of 30 layers, and the curve-correlation bound of flat curves -1.0 (Pearson r
cannot be lower). A PASS of such a check says nothing, yet it was shown as one of the checks "closest to its
tolerance". Three rules, each stated in the SKIP's detail:

- peak_layer: an allowance of at least half the layers (`NO_POWER_LAYER_SHARE`): from the middle of the curve every
  layer lies within reach, so the check cannot tell a moved peak from a kept one;
- curve_correlation: a bound at or below -1 + `CORRELATION_EPSILON`: every Pearson r passes;
- both: a flat expected curve, whose whole range (max - min over layers) is no larger than the largest run-to-run
  spread of one layer (the band's `scale`, before its multiplier): one rerun's noise moves a layer as much as the
  curve rises, so its argmax may land anywhere and its shape is noise. The band check (`curve_band`) still judges it.
  (The band's full allowance, multiplier x scale, would call the T->T MLP last-subject curve of the smoke profile flat
  though replicates reproduce its shape at r >= 0.99: too wide a rule.)
"""

from __future__ import annotations

import math

import numpy as np

NO_POWER_LAYER_SHARE = 0.5  # a peak-shift allowance covering this share of the layers or more cannot fail
CORRELATION_EPSILON = 1e-6  # a correlation bound at or below -1 + this cannot fail


def flat_curve(curve: np.ndarray, band: tuple[float, np.ndarray] | None) -> str:
    """Why `curve` ([layer] expected AIE curve) is flat against its band (multiplier, [layer] spread), or ''."""
    if band is None:
        return ""
    _, scale = band
    values = np.asarray(curve, dtype=np.float64)
    if not np.all(np.isfinite(values)) or values.size == 0:
        return ""
    spread = float(values.max() - values.min())
    allowed = float(np.max(scale))
    if spread <= allowed:
        return (f"flat expected curve: its range over layers {spread:.3g} is within the largest run-to-run spread of "
                f"one layer {allowed:.3g}, so another seed may put its peak anywhere")
    return ""


def peak_no_power(allowance: float, layers: int, flat: str = "") -> str:
    """Why a peak-layer check with this allowance (+/- layers) on a curve of `layers` layers cannot fail, or ''."""
    if layers > 0 and allowance >= NO_POWER_LAYER_SHARE * layers:
        return (f"no power: the allowed shift +/- {allowance:g} covers at least {NO_POWER_LAYER_SHARE:g} of the "
                f"{layers} layers, so no peak position can fail it")
    return f"no power: {flat}" if flat else ""


def correlation_no_power(bound: float, flat: str = "") -> str:
    """Why a curve-correlation check with this lower bound cannot fail, or ''."""
    if math.isfinite(bound) and bound <= -1 + CORRELATION_EPSILON:
        return f"no power: the bound r >= {bound:.3g} admits every correlation"
    return f"no power: {flat}" if flat else ""
