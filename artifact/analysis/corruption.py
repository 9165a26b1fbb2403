"""Corruption choice (issue 30), pure: the per-fact effects of the alternative corruptions, and one sentence on
whether the paper's claims depend on the corruption.

The corruptions: ROME's Gaussian noise at 1, 3 (ROME's level) and 5 x the calibrated sigma, and symmetric token
replacement (`artifact.tracing.replacement`). Every corruption's traces give per-fact indirect effects [pos, layer]
(`indirect_effects`) that feed the comparison and the claims (C1-C3) unchanged; replacement adds a logit-difference
metric, logit(answer) - logit(partner's answer), whose effect is the restored cell's difference minus the replaced
run's (Zhang and Nanda 2023 recommend it beside probabilities).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from artifact.tracing.config import NOISE_MULTIPLES, ROME_NOISE_MULTIPLE

REPLACEMENT = "replacement"
CORRUPTION_METRICS: dict[str, tuple[str, ...]] = {"noise": ("prob", "logprob"),
                                                  REPLACEMENT: ("prob", "logprob", "logit_diff")}


def noise_name(multiple: float) -> str:
    """The name of a noise level, e.g. 'noise_3' for 3 x sigma (ROME's)."""
    return f"noise_{multiple:g}"


CORRUPTIONS: tuple[str, ...] = (*(noise_name(m) for m in NOISE_MULTIPLES), REPLACEMENT)
BASELINE = noise_name(ROME_NOISE_MULTIPLE)  # the paper's corruption


def label(corruption: str) -> str:
    """A corruption's name for prose: 'Gaussian noise at 3 sigma' or 'token replacement'."""
    if corruption == REPLACEMENT:
        return "token replacement"
    if corruption.startswith("noise_"):
        return f"Gaussian noise at {corruption[len('noise_'):]} sigma"
    raise ValueError(f"Unknown corruption {corruption!r}. Known: {', '.join(CORRUPTIONS)}")


def indirect_effects(arrays: Mapping[str, np.ndarray], metric: str) -> np.ndarray:
    """[pos, layer] indirect effects of one trace's arrays (TraceResult / ReplacementResult `to_arrays`): restored
    minus corrupted, in P ('prob'), log P ('logprob') or, for token replacement, the logit difference
    ('logit_diff')."""
    fields = {"prob": ("scores", "low_score"), "logprob": ("logprobs", "low_logprob"),
              "logit_diff": ("logit_diffs", "low_logit_diff")}
    if metric not in fields:
        raise ValueError(f"metric must be one of {', '.join(fields)}; got {metric!r}")
    cells, low = fields[metric]
    if cells not in arrays:
        raise ValueError(f"these arrays have no {cells!r}: the {metric} metric needs a token-replacement trace")
    return np.asarray(arrays[cells], dtype=np.float64) - float(arrays[low])


def recovered_share(arrays: Mapping[str, np.ndarray], metric: str = "logit_diff", min_gap: float = 1e-6
                    ) -> np.ndarray:
    """[pos, layer] share of the clean-minus-corrupted gap that restoring the cell recovers: (restored - corrupted) /
    (clean - corrupted), 1 = fully restored. NaN where the gap is below `min_gap` (the corruption changed nothing)."""
    high = {"prob": "high_score", "logprob": "high_logprob", "logit_diff": "high_logit_diff"}[metric]
    low = {"prob": "low_score", "logprob": "low_logprob", "logit_diff": "low_logit_diff"}[metric]
    gap = float(arrays[high]) - float(arrays[low])
    effects = indirect_effects(arrays, metric)
    if not abs(gap) >= min_gap:
        return np.full(effects.shape, np.nan)
    return effects / gap


def dependence_sentence(verdicts: Mapping[str, Mapping[str, str]], baseline: str = BASELINE) -> str:
    """One sentence on whether the claims' verdicts depend on the corruption. `verdicts` is {corruption: {claim:
    verdict}} (e.g. each corruption's `claims.evaluate_claims` verdicts); the baseline is the paper's corruption."""
    if baseline not in verdicts:
        raise ValueError(f"the verdicts lack the baseline corruption {baseline!r}; got {', '.join(verdicts)}")
    claims = sorted({c for per in verdicts.values() for c in per})
    others = [c for c in verdicts if c != baseline]
    if not others:
        return f"Only {label(baseline)} was run, so whether the claims depend on the corruption is not measured."
    changed = []
    for claim in claims:
        base = verdicts[baseline].get(claim, "not judged")
        moved = [f"{verdicts[c].get(claim, 'not judged')} under {label(c)}" for c in others
                 if verdicts[c].get(claim, "not judged") != base]
        if moved:
            changed.append(f"{claim} is {base} under {label(baseline)} but " + " and ".join(moved))
    compared = ", ".join(label(c) for c in others)
    if not changed:
        return (f"Every claim's verdict ({', '.join(f'{c} {verdicts[baseline].get(c)}' for c in claims)}) is the same "
                f"under {label(baseline)} and under {compared}: the conclusion does not depend on the corruption.")
    return "The conclusion depends on the corruption: " + "; ".join(changed) + "."


def verdict_table(verdicts: Mapping[str, Mapping[str, str]]) -> list[dict[str, Any]]:
    """Rows {corruption, label, C1, C2, C3...} in CORRUPTIONS order (others after), for a summary table."""
    order = [c for c in CORRUPTIONS if c in verdicts] + [c for c in verdicts if c not in CORRUPTIONS]
    return [{"corruption": c, "label": label(c), **dict(verdicts[c])} for c in order]


__all__ = ["BASELINE", "CORRUPTIONS", "CORRUPTION_METRICS", "REPLACEMENT", "dependence_sentence", "indirect_effects",
           "label", "noise_name", "recovered_share", "verdict_table"]
