"""The Known allowance from margins (issue 28, part 6): which Known flips are float noise, per dtype, in one place.

The Known check records per fact its margin (artifact/known.py: the answer's logit minus the best other text-mode
logit; > 0 exactly when known). Two correct runs of one model and dtype differ only by rounding, which moves a margin
by at most 2 B, B the largest |margin - exact margin| of that dtype; a fact flips between them only when its margin
lies within 2 B of 0. So a fact that entered or left the Known set with |margin| under the bound (NUMERICS_SAFETY x
2 x B) is free, whatever their number, and any flip above it FAILs: it is another model, prompt or code, not noise.

The bounds, measured with bench/known_margin_bound.py (the Known check of the embedded model, SmolLM2-135M, on the
project's own 264 facts, T->T prompts, against the same check in float64), and how:
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

# dtype -> {"bound": |margin| under which a flip is free, "how_measured": ...}
KNOWN_MARGIN_BOUNDS: dict[str, dict[str, Any]] = {
    "float32": {
        "bound": 8.77e-05,
        "how_measured": "2.0 (NUMERICS_SAFETY) x 2 x B, B = 2.19e-05 = the largest |fp32 margin - float64 margin| over "
                        "the 264 own facts (T->T, batches of 32; median 3.81e-06; 127 known; no verdict differs; no "
                        "fact's float64 margin lies under the bound); bench/known_margin_bound.py, 2026-12-06",
    },
    "bfloat16": {
        "bound": 1.21,
        "how_measured": "2.0 (NUMERICS_SAFETY) x 2 x B, B = 0.303 = the largest |bf16 margin - exact margin| over the "
                        "264 own facts (T->T; median 0.0533), the model loaded in bf16 as SpiritLM's checkpoint is "
                        "(one prompt per forward) against the same bf16 weights widened to float64; 2 facts' Known "
                        "verdicts differ from exact, and 109 of 264 facts' exact |margin| lie under the bound (bf16 "
                        "keeps 8 significant bits: logits of 10-20 round by 0.04-0.08). CPU kernels of torch 2.6; a "
                        "GPU's bf16 kernels and a 32-layer 7B model were not measured; "
                        "bench/known_margin_bound.py, 2026-12-06",
    },
}


def dtype_name(settings: Mapping[str, Any] | None) -> str:
    """A run's dtype as a bare name ("float32", "bfloat16"): settings.json stores e.g. "torch.float32"."""
    return str((settings or {}).get("dtype") or "").removeprefix("torch.")


def margin_bound(settings: Mapping[str, Any] | None) -> float | None:
    """The measured bound for the run's dtype; None when none was measured for it (the old count rule applies)."""
    entry = KNOWN_MARGIN_BOUNDS.get(dtype_name(settings))
    bound = (entry or {}).get("bound")
    return float(bound) if isinstance(bound, (int, float)) and math.isfinite(bound) else None


def flip_margin(fact: str, sides: Sequence[Mapping[str, float] | None]) -> float | None:
    """The |margin| of a flipped fact at its Known decision: the largest |margin| any side recorded for it (a flip
    by rounding leaves it small on both sides); None when no side recorded one."""
    values = [abs(float(m[fact])) for m in sides if m and fact in m]
    return max(values) if values else None


def split_flips(flips: Sequence[str], bound: float, sides: Sequence[Mapping[str, float] | None]
                ) -> tuple[list[str], list[str], list[str]]:
    """(free, above, unrecorded): flips whose |margin| is under `bound`, at or above it, or recorded on no side."""
    free, above, unrecorded = [], [], []
    for fact in flips:
        m = flip_margin(fact, sides)
        (unrecorded if m is None else free if m < bound else above).append(fact)
    return free, above, unrecorded
