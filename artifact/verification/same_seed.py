"""The same-seed tier: a rerun with the reference's noise seed (the default for a reviewer) draws the same noise
(ROME's corruption depends on the seed alone, not on how cells are batched), so its numbers differ from the reference
only by float reductions (batch size, thread count, BLAS, device). It is
judged cell by cell against a tolerance calibrated from such reruns, instead of the other-seed tolerances that must
absorb a whole new noise draw (0.02-0.19 on the embedded smoke profile, against reruns that differ by ~1e-6)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from artifact.core.names import GROUPS
from artifact.verification.carryover import rerun_differences
from artifact.verification.load import ArmData, load_run_arm, load_tolerances
from artifact.verification.records import FAIL, PASS, SAFETY, Check, VerifyError
from artifact.verification.statistics import pair

# The smallest tolerance, whatever the reruns here showed: other CPUs' and GPUs' reductions differ more than this
# machine's thread counts (documented in expected/README.md with the observed values).
SAME_SEED_FLOOR = 1e-4
DEFINING = ("seed",)  # what makes two runs draw the same noise (corruption.noise_delta: the seed alone)


def same_noise(regen: ArmData, expected: ArmData) -> bool:
    """Both runs drew the same noise: the same seed (batch size, thread count and device may differ)."""
    r, e = regen.settings or {}, expected.settings or {}
    return all(r.get(k) is not None and r.get(k) == e.get(k) for k in DEFINING)


def max_cell_difference(regen: ArmData, expected: ArmData, kind: str, metric: str
                        ) -> tuple[float, tuple[str, str, int] | None, int]:
    """The largest |regenerated - expected| over paired facts, groups and layers (NaN cells must be NaN on both
    sides), where it is (fact, group, layer), and how many facts were paired."""
    ids, r, e = pair(regen, expected, kind, metric)
    if not ids:
        return math.nan, None, 0
    if r.shape != e.shape:
        raise VerifyError(f"{kind}_{metric}: regenerated shape {r.shape} != expected {e.shape}")
    nan_mismatch = np.isnan(r) != np.isnan(e)
    if nan_mismatch.any():
        f, g, layer = map(int, np.argwhere(nan_mismatch)[0])
        return math.inf, (ids[f], GROUPS[g], layer), len(ids)
    diff = np.abs(np.nan_to_num(r - e, nan=0.0))
    f, g, layer = map(int, np.unravel_index(int(np.argmax(diff)), diff.shape))
    return float(diff[f, g, layer]), (ids[f], GROUPS[g], layer), len(ids)


def calibrate_same_seed(reruns: Sequence[Path], reference: Path, metrics: Sequence[str],
                        safety: float = SAFETY) -> dict[str, Any]:
    """The same-seed tolerance from reruns with the reference's seed (other batch sizes, thread counts, devices):
    max(SAME_SEED_FLOOR, safety x the largest cell difference any of them shows)."""
    if not reruns:
        raise ValueError("calibrate_same_seed needs at least one same-seed rerun")
    observed: dict[str, float] = {}
    refs = {arm: load_run_arm(Path(reference), arm) for arm in ("t2t", "s2t")}  # read once, not per rerun
    for rerun in reruns:
        for arm, ref in refs.items():
            other = load_run_arm(Path(rerun), arm)
            if not same_noise(other, ref):
                raise VerifyError(f"{rerun} is not a same-seed rerun of {reference} ({arm}: seed "
                                  f"{(other.settings or {}).get('seed')} vs {(ref.settings or {}).get('seed')})")
            for kind in ref.kinds():
                for metric in metrics:
                    worst, _, _ = max_cell_difference(other, ref, kind, metric)
                    key = f"{arm}/{kind}/{metric}"
                    observed[key] = max(observed.get(key, 0.0), worst)
        for key, worst in rerun_differences(Path(rerun), Path(reference)).items():
            observed[key] = max(observed.get(key, 0.0), worst)
    largest = max(observed.values())
    value = max(SAME_SEED_FLOOR, safety * largest)
    return {"value": value, "observed": observed, "reruns": [str(r) for r in reruns],
            "how_chosen": f"max({SAME_SEED_FLOOR:g}, {safety} x the largest |rerun - reference| over every paired "
                          f"cell (fact, group, layer), arm, kind and metric, and every carry-over cell, of "
                          f"{len(reruns)} same-seed rerun(s) = "
                          f"{largest:.3g}); the floor stands for other CPUs' and GPUs' float reductions"}


def check_same_seed(regen: ArmData, expected: ArmData, kind: str, metric: str, tolerance: float) -> Check:
    """Every paired cell within the same-seed tolerance."""
    worst, where, n = max_cell_difference(regen, expected, kind, metric)
    base = {"arm": regen.arm, "kind": kind, "metric": metric}
    ok = math.isfinite(worst) and worst <= tolerance
    at = f"fact {where[0]}, group {where[1]}, layer {where[2]}" if where else "no paired facts"
    detail = (f"max |regenerated - expected| over {n} paired facts x groups x layers, at {at}"
              + ("; a group empty on one side only" if worst == math.inf else ""))
    return Check("same_seed_cells", PASS if ok else FAIL, **base, observed=worst, expected=0.0, tolerance=tolerance,
                 detail=detail)


def borrow_same_seed_tier(profile: Path) -> dict[str, Any]:
    """A tolerances document with only the same-seed tier (and the Known-set allowances) of another recorded profile
    of the same model and code: for a profile too costly to replicate (each other-seed replicate of the embedded
    standard profile takes 2 h on 2 cores). Float reductions depend on the model, code and machine, not on how many
    facts are traced, so the calibrated same-seed tolerance carries over; verify then judges same-seed reruns cell
    by cell and says that other-seed reruns cannot be judged."""
    source = load_tolerances(Path(profile))
    if "same_seed" not in source:
        raise VerifyError(f"{profile} has no same-seed tier to borrow: record it with --same-seed-from")
    entries = {key: value for key, value in (source.get("entries") or {}).items() if key.endswith("/known_set")}
    for entry in entries.values():
        for tolerance in entry.values():
            tolerance["how_chosen"] = f"borrowed from {Path(profile).name}: {tolerance.get('how_chosen', '')}"
    same_seed = dict(source["same_seed"])
    same_seed["how_chosen"] = (f"borrowed from {Path(profile).name} (same model, code and numerics; float reductions "
                               f"do not depend on the number of facts): {same_seed.get('how_chosen', '')}")
    return {"format": source.get("format"), "metrics": source.get("metrics"), "groups": source.get("groups"),
            "entries": entries, "same_seed": same_seed, "claims": {"unstable": [], "how_chosen": "not calibrated"},
            "verdict": f"same-seed tier only (borrowed from {Path(profile).name}); no other-seed replicates"}
