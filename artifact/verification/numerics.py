"""The numerics bound of the same-seed tier (issue 25, finding 8): how far a correct fp32 run can lie from exact
arithmetic, measured against the same run in float64, and the same-seed tolerance set from it.

A same-seed rerun draws the reference's noise, so its cells differ from the reference only by float rounding. Each
fp32 run lies within B of the exact result, B measured as the largest |fp32 - float64| over every paired cell (the
float64 run is exact to ~1e-15 at this scale); two correct fp32 runs, on any hardware whose fp32 kernels round no
worse than this machine's, differ by at most 2 B. The tolerance is NUMERICS_SAFETY x 2 B, per metric.

Which form the cells are judged in. Measured on the embedded smoke profile (expected/README.md): the error of a
cell's log-probability does not grow as its probability shrinks (|fp32 - float64| of log P is ~1-3e-5 for P from
1e-4 to 0.9: fp32 rounds the logits, and log-softmax passes a logit error through unchanged), while the error of P
is P times that (~1e-8 at P = 1e-3, ~2e-5 at P = 0.9). So log-prob cells are judged in the log domain with an
absolute bound (it is the well-conditioned form here: no floor on P is needed, and a relative bound on P would be
the same test), and prob cells with an absolute bound, which the cells with large P set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from artifact.verification.carryover import EXPECTED_DIR, STACKED_FILE, carryover_results, stacked_arrays
from artifact.verification.load import ArmData, load_arm_from_traces, load_expected_arm, load_run_arm
from artifact.verification.records import DEFAULT_METRICS, VerifyError, metric_of
from artifact.verification.statistics import pair

# Margin on 2 x the float64 bound: the bound is a maximum over a few thousand cells of one profile on one CPU;
# another BLAS or SIMD width sums in another order (an fp32 dot product's rounding error grows with the number of
# terms summed one after the other: up to d = 576 here), so a reviewer's kernels may round somewhat worse.
NUMERICS_SAFETY = 2.0
ARMS = ("t2t", "s2t")


def _fp32_arm(reference: Path, arm: str) -> ArmData:
    """The fp32 side: an expected profile's arm, or a results folder's aggregated arm."""
    if (Path(reference) / arm).is_dir() and not (Path(reference) / "runs").is_dir():
        return load_expected_arm(reference, arm)
    return load_run_arm(reference, arm)


def float64_differences(reference: Path, float64_run: Path) -> dict[str, dict[str, Any]]:
    """Per "<arm>/<kind>/<metric>": the largest |fp32 - float64| over every paired cell (fact, group, layer) of
    the reference (an expected profile or a results folder) and a float64 run of the same profile and seed, with
    the number of paired facts and cells; plus the carry-over arrays when both have them."""
    out: dict[str, dict[str, Any]] = {}
    for arm in ARMS:
        exact = load_arm_from_traces(float64_run, arm)
        if "float64" not in str((exact.settings or {}).get("dtype")):
            raise VerifyError(f"{float64_run} ({arm}) is not a float64 run (dtype {(exact.settings or {}).get('dtype')}"
                              "): run the profile with run_pipeline(dtype='float64') (bench/numerics_bound.py)")
        fp32 = _fp32_arm(reference, arm)
        if (fp32.settings or {}).get("seed") != (exact.settings or {}).get("seed"):
            raise VerifyError(f"{float64_run} used noise seed {(exact.settings or {}).get('seed')}, the reference "
                              f"{(fp32.settings or {}).get('seed')}: the float64 run must draw the same noise")
        for kind in fp32.kinds():
            if kind not in exact.fact_ids:
                continue
            for metric in DEFAULT_METRICS:
                ids, a, b = pair(exact, fp32, kind, metric)
                if not ids:
                    continue
                diff = np.abs(a - b)
                out[f"{arm}/{kind}/{metric}"] = {"max": float(np.nanmax(diff)) if np.isfinite(diff).any() else 0.0,
                                                 "facts": len(ids), "cells": int(np.isfinite(diff).sum())}
    out.update(_carryover_differences(reference, float64_run))
    return out


def _carryover_differences(reference: Path, float64_run: Path) -> dict[str, dict[str, Any]]:
    if carryover_results(float64_run) is None:
        return {}
    ids, exact = stacked_arrays(float64_run)
    stacked = Path(reference) / EXPECTED_DIR / STACKED_FILE
    if stacked.is_file():
        with np.load(stacked, allow_pickle=False) as data:
            fp32 = {k: data[k] for k in data.files}
        fp32_ids = [str(i) for i in fp32["known_id"]]
    elif carryover_results(reference) is not None:
        fp32_ids, fp32 = stacked_arrays(reference)
    else:
        return {}
    shared = [i for i in ids if i in fp32_ids]
    out = {}
    for name in ("knockout_prob", "knockout_clean", "lens_prob", "patch_ie_prob", "patch_ie_logprob"):
        if name in exact and name in fp32 and shared:
            a = exact[name][[ids.index(i) for i in shared]]
            b = fp32[name][[fp32_ids.index(i) for i in shared]]
            diff = np.abs(a - b)
            out[f"carryover/{name}"] = {"max": float(np.nanmax(diff)) if np.isfinite(diff).any() else 0.0,
                                        "facts": len(shared), "cells": int(np.isfinite(diff).sum())}
    return out


def numerics_tolerances(differences: dict[str, dict[str, Any]], safety: float = NUMERICS_SAFETY
                        ) -> dict[str, float]:
    """Per metric: safety x 2 x the largest float64 difference of any arm, kind or carry-over array of that metric."""
    bound = {metric: 0.0 for metric in DEFAULT_METRICS}
    for key, entry in differences.items():
        metric = metric_of(key)
        bound[metric] = max(bound[metric], entry["max"])
    return {metric: safety * 2 * value for metric, value in bound.items() if value > 0}


def same_seed_tolerance(same_seed: dict[str, Any] | None, metric: str) -> float | None:
    """The same-seed tolerance of `metric` in a tolerances document's "same_seed" entry: its per-metric value when
    it has one (profiles with a float64 bound), else its single value (older profiles)."""
    if not same_seed:
        return None
    return (same_seed.get("metrics") or {}).get(metric, same_seed.get("value"))


def float64_entry(reference: Path, float64_run: Path, safety: float = NUMERICS_SAFETY,
                  earlier: dict[str, Any] | None = None) -> dict[str, Any]:
    """What tolerances.json records of the float64 measurement: the run, the differences, the bound per metric and
    the tolerances set from it. `earlier` (the profile's recorded float64 entry) adds its differences of the parts
    this run did not measure (a float64 run of only some parts, bench/numerics_bound.py --arms/--carryover: the
    earlier run's folder need not exist); each difference names the run it was measured in."""
    differences = float64_differences(reference, float64_run)
    if not differences:
        raise VerifyError(f"{float64_run} and {reference} have no paired cells: is the float64 run of this profile?")
    differences = {key: {**entry, "run": str(float64_run)} for key, entry in differences.items()}
    kept = {key: {**entry, "run": entry.get("run", (earlier or {}).get("run"))}
            for key, entry in ((earlier or {}).get("differences") or {}).items() if key not in differences}
    differences.update(kept)
    tolerances = numerics_tolerances(differences, safety)
    how = (f"; the parts not measured in {float64_run} ({', '.join(sorted(kept))}) are kept from the earlier "
           "float64 measurement recorded in the profile" if kept else "")
    return {"run": str(float64_run), "reference": str(reference), "differences": differences,
            "bound": {m: v / (2 * safety) for m, v in tolerances.items()}, "safety": safety,
            "tolerances": tolerances,
            "how_chosen": f"per metric, {safety} x 2 x the largest |fp32 - float64| over every paired cell (fact, "
                          "group, layer) of every arm and kind and every carry-over array of that metric: each fp32 "
                          "run lies within the bound of exact arithmetic, so two correct fp32 runs differ by at "
                          f"most twice it; {safety} for kernels that round worse than this machine's. Log-prob "
                          "cells are judged in the log domain (absolute): their fp32 error does not grow as P "
                          "shrinks (artifact/verification/numerics.py)" + how}


def combine(float64: dict[str, Any] | None, observed: dict[str, float], safety: float,
            metrics: Sequence[str], floor: float) -> dict[str, float]:
    """Per metric: the float64-based tolerance, raised to safety x the largest same-seed rerun difference of that
    metric when a rerun showed more (it then rounds worse than the bound allows: say so); without a float64
    measurement, max(floor, safety x the rerun differences) as before."""
    out = {}
    for metric in metrics:
        seen = max((v for k, v in observed.items() if metric_of(k) == metric), default=0.0)
        base = (float64 or {}).get("tolerances", {}).get(metric)
        out[metric] = max(base if base is not None else floor, safety * seen)
    return out
