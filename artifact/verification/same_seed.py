"""The same-seed tier: a rerun with the reference's noise seed (the default for a reviewer) draws the same noise
(ROME's corruption depends on the seed alone, not on how cells are batched), so its numbers differ from the reference
only by float reductions (batch size, thread count, BLAS, device). It is
judged cell by cell against a tolerance per metric set from the float64 bound on fp32 rounding (numerics.py), instead
of the other-seed tolerances that must absorb a whole new noise draw (0.02-0.19 on the embedded smoke profile)."""

from __future__ import annotations

import datetime
import json
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from artifact.core.fileio import sha256_file
from artifact.core.layout import TOLERANCES_FILE
from artifact.core.names import GROUPS
from artifact.verification.carryover import rerun_differences
from artifact.verification.load import ArmData, load_run_arm, load_tolerances
from artifact.verification.numerics import combine, float64_entry
from artifact.verification.records import DEFAULT_METRICS, FAIL, PASS, SAFETY, Check, VerifyError
from artifact.verification.statistics import pair

# The old rule's smallest tolerance, for a profile calibrated without a float64 run (unmeasured: a guess at other
# machines' reductions). With a float64 run the tolerance is the numerics bound instead (numerics.py).
SAME_SEED_FLOOR = 1e-4
DEFINING = ("seed",)  # with the noise streams, what makes two runs draw the same noise (corruption.noise_delta)


def noise_streams(settings: dict[str, Any] | None) -> str:
    """Where a run's noise samples came from (RunSettings.noise_streams); a settings.json without the field was
    written before per-sample streams existed, with ROME's single stream."""
    return str((settings or {}).get("noise_streams", "rome"))


def same_noise(regen: ArmData, expected: ArmData) -> bool:
    """Both runs drew the same noise: the same seed and noise streams (batch size, thread count and device may
    differ)."""
    r, e = regen.settings or {}, expected.settings or {}
    return all(r.get(k) is not None and r.get(k) == e.get(k) for k in DEFINING) and noise_streams(r) == noise_streams(e)


def streams_differ(regen: ArmData, expected: ArmData) -> str | None:
    """Why a run with the reference's seed is still not a same-seed rerun (its noise came from other streams), or
    None when the streams agree."""
    r, e = noise_streams(regen.settings), noise_streams(expected.settings)
    if r == e:
        return None
    return (f"this run drew its noise from {r!r} streams, the expected run from {e!r} ones: the same seed gives other "
            f"noise, so its cells are not compared one by one (the same-seed tier); rerun with noise streams {e!r} "
            "for that, or re-record the profile with the new streams")


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
                        safety: float = SAFETY, float64_from: Path | dict[str, Any] | None = None
                        ) -> dict[str, Any]:
    """The same-seed tolerance per metric. With `float64_from` (the reference's profile run in float64:
    numerics.float64_entry): NUMERICS_SAFETY x 2 x the largest |fp32 - float64| cell of that metric, the bound on
    how far two correct fp32 runs can differ; reruns with the reference's seed (other batch sizes, thread counts,
    devices), when given, must show less (else their safety x difference is taken). A dict instead of a path: the
    "float64" entry of another profile's tolerances.json (same model and code), used as it is. Without it:
    max(SAME_SEED_FLOOR, safety x the largest rerun difference)."""
    if not reruns and float64_from is None:
        raise ValueError("calibrate_same_seed needs a float64 run of the reference (float64_from) or at least one "
                         "same-seed rerun")
    observed: dict[str, float] = {}
    refs = {arm: load_run_arm(Path(reference), arm) for arm in ("t2t", "s2t")}  # read once, not per rerun
    for rerun in reruns:
        for arm, ref in refs.items():
            other = load_run_arm(Path(rerun), arm)
            if not same_noise(other, ref):
                raise VerifyError(f"{rerun} is not a same-seed rerun of {reference} ({arm}: seed "
                                  f"{(other.settings or {}).get('seed')} vs {(ref.settings or {}).get('seed')}, noise "
                                  f"streams {noise_streams(other.settings)} vs {noise_streams(ref.settings)})")
            for kind in ref.kinds():
                for metric in metrics:
                    worst, _, _ = max_cell_difference(other, ref, kind, metric)
                    key = f"{arm}/{kind}/{metric}"
                    observed[key] = max(observed.get(key, 0.0), worst)
        for key, worst in rerun_differences(Path(rerun), Path(reference)).items():
            observed[key] = max(observed.get(key, 0.0), worst)
    if isinstance(float64_from, dict):  # another profile's measurement (same model and code), used as it is
        float64 = {**float64_from, "how_chosen": f"borrowed from {float64_from.get('reference')}: "
                                                 f"{float64_from.get('how_chosen', '')}"}
    else:
        float64 = float64_entry(Path(reference), Path(float64_from)) if float64_from is not None else None
    per_metric = combine(float64, observed, safety, metrics, SAME_SEED_FLOOR)
    largest = max(observed.values(), default=0.0)
    if float64 is not None:
        how = (f"{float64['how_chosen']}; the {len(reruns)} same-seed rerun(s) showed at most "
               f"{largest:.3g} (raised to {safety} x that where a rerun showed more)")
    else:
        how = (f"max({SAME_SEED_FLOOR:g}, {safety} x the largest |rerun - reference| over every paired cell (fact, "
               f"group, layer), arm, kind and metric, and every carry-over cell, of {len(reruns)} same-seed rerun(s) "
               f"= {largest:.3g}); no float64 bound measured (the floor is unmeasured)")
    doc: dict[str, Any] = {"value": max(per_metric.values()), "metrics": per_metric, "observed": observed,
                           "reruns": [str(r) for r in reruns], "how_chosen": how}
    if float64 is not None:
        doc["float64"] = float64
    return doc


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


def update_same_seed(profile: Path, float64_from: Path | None = None, borrow_from: Path | None = None
                     ) -> dict[str, Any]:
    """Re-set the same-seed tier of a recorded profile without re-recording it (its reference run folder and
    replicates need not exist): from `float64_from`, the profile's run in float64 (the profile's own recorded cells
    are the fp32 side; the same-seed reruns it recorded stay in "observed" and still raise a tolerance they exceed),
    or, for a profile that borrows its same-seed tier, from `borrow_from`'s (already updated) one. A float64 run of
    only some parts adds to the profile's recorded float64 measurement (`float64_entry`'s `earlier`). Rewrites
    tolerances.json and that file's sha256 in manifest.json; returns the new "same_seed" entry."""
    profile = Path(profile)
    document = load_tolerances(profile)
    if (float64_from is None) == (borrow_from is None):
        raise ValueError("update_same_seed needs exactly one of float64_from and borrow_from")
    if float64_from is not None:
        old = document.get("same_seed") or {}
        observed = dict(old.get("observed") or {})
        metrics = tuple(document.get("metrics") or DEFAULT_METRICS)
        float64 = float64_entry(profile, Path(float64_from), earlier=old.get("float64"))
        per_metric = combine(float64, observed, float(document.get("safety", SAFETY)), metrics, SAME_SEED_FLOOR)
        same_seed = {"value": max(per_metric.values()), "metrics": per_metric, "observed": observed,
                     "reruns": old.get("reruns", []), "float64": float64,
                     "how_chosen": f"{float64['how_chosen']}; the profile's same-seed reruns "
                                   f"({', '.join(old.get('reruns', [])) or 'none'}) showed at most "
                                   f"{max(observed.values(), default=0.0):.3g} (a rerun that showed more would raise "
                                   f"its metric to {document.get('safety', SAFETY)} x that)",
                     "updated": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                     "previous": {k: old[k] for k in ("value", "how_chosen") if k in old}}
    else:
        source = load_tolerances(Path(borrow_from))
        if "float64" not in (source.get("same_seed") or {}):
            raise VerifyError(f"{borrow_from} has no float64-based same-seed tier to borrow: update it first")
        same_seed = dict(source["same_seed"])
        same_seed["how_chosen"] = (f"borrowed from {Path(borrow_from).name} (same model, code and numerics; float "
                                   f"reductions do not depend on the number of facts): {same_seed['how_chosen']}")
        same_seed["previous"] = {k: (document.get("same_seed") or {})[k] for k in ("value", "how_chosen")
                                 if k in (document.get("same_seed") or {})}
    document["same_seed"] = same_seed
    path = profile / TOLERANCES_FILE
    path.write_text(json.dumps(document, indent=2) + "\n")
    manifest_path = profile / "manifest.json"
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text())
        if TOLERANCES_FILE in (manifest.get("files") or {}):
            manifest["files"][TOLERANCES_FILE] = sha256_file(path)
            manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return same_seed
