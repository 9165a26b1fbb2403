"""What verify.py produces and the defaults it works with: check records (one line of the report), the report,
the verdict words, and the calibration constants documented in expected/README.md.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from artifact.core.jsonable import jsonable

PASS, FAIL, SKIP, INFO = "PASS", "FAIL", "SKIP", "INFO"


DEFAULT_METRICS: tuple[str, ...] = ("prob", "logprob")  # both metrics the claims and figures use


def metric_of(name: str) -> str:
    """The metric a cell array is judged by: 'logprob' for log-probability arrays, else 'prob'."""
    return "logprob" if name.endswith("logprob") else "prob"


# Other-seed tier: bands and curve shapes at the two groups with a peak. The four weak groups' curves average a few
# facts each and are mostly noise between seeds: with their bands added, 2 of 5 leave-one-out replicates of the
# embedded smoke profile FAILed (expected/README.md). Every cell of every group is checked in the same-seed tier.
CHECK_GROUPS: tuple[str, ...] = ("last_subject", "last")
SHAPE_GROUPS: tuple[str, ...] = CHECK_GROUPS


FORMAT_VERSION = 1


# Checks whose observed value must stay at or below the tolerance, and those whose observed value (at most 1) must
# stay at or above it: for the report's "closest to their tolerances".
UPPER_BOUND_CHECKS: tuple[str, ...] = ("curve_band", "same_seed_cells", "known_set", "traced_set", "claim_statistic")
LOWER_BOUND_CHECKS: tuple[str, ...] = ("curve_correlation", "fact_correlation")


# Settings that must agree for the comparison to mean anything; the rest (seed, batch_size, device) may differ.
MATCHED_SETTINGS: tuple[str, ...] = ("arm", "model", "dtype", "facts_fingerprint", "noise_spec", "samples", "window",
                                     "positions")


NOISE_RTOL = 1e-4


# Calibration defaults (documented in expected/README.md).
SAFETY = 1.5  # multiplicative margin on every measured spread


ALPHA = 0.05  # family-wise error of the per-layer band (per curve, over its layers)


# The band's spread is floored at this absolute value (the same-seed tier's floor: numerics).
BAND_FLOOR = 1e-4


SIMULATED_RERUNS = 1000  # resampled run-to-run differences per replicate for the curve-shape tolerances


NULL_PERMUTATIONS = 20  # derangements of facts used to measure the "wrong facts" correlation distribution


ClaimsFn = Callable[[Path], dict[str, Any]]


class VerifyError(Exception):
    """Input that makes a check impossible (missing file, bad format); turned into a FAIL record, never a traceback."""


@dataclass
class Check:
    """One line of the report."""

    check: str
    verdict: str
    arm: str | None = None
    kind: str | None = None
    metric: str | None = None
    group: str | None = None
    observed: Any = None
    expected: Any = None
    tolerance: Any = None
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {k: jsonable(v) for k, v in asdict(self).items()}


@dataclass
class Report:
    """Everything verify found: the checks, what was possible, and the verdict."""

    results: str
    expected: str
    checks: list[Check]
    possible: list[str]
    skipped: dict[str, str]
    verdict: str = FAIL

    def to_dict(self) -> dict[str, Any]:
        counts = {v: sum(c.verdict == v for c in self.checks) for v in (PASS, FAIL, SKIP, INFO)}
        closest = [{"check": label, "used": used} for label, used in closest_margins(self.checks)]
        return {"verdict": self.verdict, "results": self.results, "expected": self.expected, "counts": counts,
                "possible": self.possible, "skipped": self.skipped, "closest": closest,
                "checks": [c.to_dict() for c in self.checks]}


def used_tolerance(check: Check) -> float | None:
    """How much of its tolerance a judged check used (0: exact agreement, 1: at the limit, > 1: FAIL), for the checks
    with a numeric tolerance; None for the others (claims, settings, files)."""
    obs, exp, tol = check.observed, check.expected, check.tolerance
    numbers = all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in (obs, tol))
    if check.verdict not in (PASS, FAIL) or not numbers:
        return None
    if check.check in UPPER_BOUND_CHECKS:  # observed <= tolerance
        return obs / tol if tol > 0 else (0.0 if obs == 0 else math.inf)
    if check.check == "peak_layer" and isinstance(exp, (int, float)):  # |shift| <= tolerance
        return abs(obs - exp) / tol if tol > 0 else (0.0 if obs == exp else math.inf)
    if check.check in LOWER_BOUND_CHECKS:  # observed >= tolerance, 1 at best
        return (1 - obs) / (1 - tol) if tol < 1 else (0.0 if obs >= 1 else math.inf)
    return None


def closest_margins(checks: list[Check], count: int = 3) -> list[tuple[str, float]]:
    """The passed checks that came closest to their tolerances: (label, share of the tolerance used)."""
    scored = [(used_tolerance(c), c) for c in checks if c.verdict == PASS]
    scored = sorted(((u, c) for u, c in scored if u is not None), key=lambda item: -item[0])[:count]
    return [(f"{c.check} " + "/".join(str(x) for x in (c.arm, c.kind, c.metric, c.group) if x), u) for u, c in scored]
