"""Each claim condition's statistic banded across noise seeds (issue 28, part 5): a tolerance on the number, not only
on the verdict.

A claim verdict can stay the same while its statistic moves far (or flip while it barely moves, at a threshold). So
the profile records every condition's value (claims.json "conditions", keyed by `claims.condition_key`), the
calibration measures how far it moves between the reference and its other-seed replicates, and verify checks that
the regenerated value lies within a Student t prediction band of the expected one, as `curve_band` does for a curve
layer: |regenerated - expected| <= multiplier x scale, scale = the root mean square of the differences over every pair
of the k + 1 runs (sqrt(2) x the SD over runs, floored at BAND_FLOOR), multiplier = the t quantile at
1 - alpha / (2 m) with k degrees of freedom (Bonferroni over the m banded conditions). The peak-layer condition of C1
("within" a band of depths) is left out: a peak layer is discrete and is checked by `peak_layer`.

Profiles recorded before this (claims.json without conditions, tolerances.json without "claim_statistics") still
load: verify says the statistics could not be checked and judges the verdicts as before.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from artifact.analysis.claims import condition_key, requirement_of
from artifact.core.layout import comparison_file
from artifact.verification.load import read_json
from artifact.verification.records import BAND_FLOOR, FAIL, PASS, Check, VerifyError
from artifact.verification.statistics import band_multiplier


def condition_values(claims_section: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """{condition key: {"value", "margin", "operator", "thresholds", "statistic"}} of a comparison's claims section,
    for the conditions with a numeric value and a one-sided threshold (the ones banded)."""
    out: dict[str, dict[str, Any]] = {}
    for claim, entry in (claims_section or {}).items():
        for condition in (entry or {}).get("conditions", []) if isinstance(entry, dict) else []:
            requirement = requirement_of(condition)
            value = condition.get("value")
            if requirement is None or requirement[0] == "within" or not isinstance(value, (int, float)) \
                    or not math.isfinite(value):
                continue
            out[condition_key(str(claim), condition)] = {
                "value": float(value), "margin": condition.get("margin"), "operator": requirement[0],
                "thresholds": list(requirement[1]), "statistic": condition.get("statistic")}
    return out


def run_condition_values(results: Path) -> dict[str, dict[str, Any]]:
    """The banded condition values of a results folder (comparison/comparison.json)."""
    doc = read_json(comparison_file(Path(results)))
    if "claims" not in doc:
        raise VerifyError(f"{comparison_file(Path(results))} has no 'claims' section")
    return condition_values(doc["claims"])


def calibrate_claim_statistics(reference: Path, replicates: Sequence[Path], alpha: float) -> dict[str, Any]:
    """The band of every condition present in the reference and all replicates (see the module docstring)."""
    runs = [run_condition_values(Path(reference))] + [run_condition_values(Path(d)) for d in replicates]
    keys = [k for k in runs[0] if all(k in r for r in runs[1:])]
    k = len(runs) - 1
    if not keys or k < 1:
        return {}
    multiplier = band_multiplier(len(runs), len(keys), alpha)
    out = {}
    for key in keys:
        values = [r[key]["value"] for r in runs]
        pairs = [a - b for a, b in itertools.combinations(values, 2)]
        scale = max(BAND_FLOOR, float(np.sqrt(np.mean(np.square(pairs)))))
        out[key] = {"value": multiplier, "scale": scale, "observed": values,
                    "how_chosen": f"|regenerated - expected| <= value x scale; scale = root mean square of the "
                                  f"differences over the {len(pairs)} pairs of the {len(runs)} runs (reference first "
                                  f"in observed), floored at {BAND_FLOOR}; value = Student t quantile 1 - {alpha}/"
                                  f"(2 x {len(keys)} conditions) with {k} degrees of freedom"}
    return out


def check_claim_statistics(regenerated: Mapping[str, Mapping[str, Any]], expected: Mapping[str, Any],
                           bands: Mapping[str, Any]) -> list[Check]:
    """Each banded condition's regenerated value against the profile's (claims.json "conditions")."""
    out = []
    for key, band in bands.items():
        want = (expected.get(key) or {}).get("value")
        if not isinstance(want, (int, float)):
            continue
        got = (regenerated.get(key) or {}).get("value")
        if got is None:
            out.append(Check("claim_statistic", FAIL, group=key, expected=want,
                             detail="the regenerated comparison has no value for this condition"))
            continue
        ratio = abs(got - want) / band["scale"]
        out.append(Check("claim_statistic", PASS if ratio <= band["value"] else FAIL, group=key, observed=ratio,
                         expected=0.0, tolerance=band["value"],
                         detail=f"{(regenerated.get(key) or {}).get('statistic', key)}: regenerated {got:.4g}, "
                                f"expected {want:.4g}; |difference| / run-to-run spread {band['scale']:.3g} (margin "
                                f"regenerated {_num((regenerated.get(key) or {}).get('margin'))}, expected "
                                f"{_num((expected.get(key) or {}).get('margin'))})"))
    return out


def _num(x: Any) -> str:
    return "n/a" if not isinstance(x, (int, float)) else f"{x:.4g}"
