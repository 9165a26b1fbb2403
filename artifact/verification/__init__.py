"""Statistical comparison of regenerated results with a stored expected profile (what `verify.py` runs).

Every check is a pure function returning `Check` records {check, arm, kind, metric, group, observed, expected,
tolerance, verdict, detail}; `verify()` runs them all and never raises on bad input: a missing file, a NaN or a
layer-count mismatch becomes a FAIL record naming it. The checks and the calibration of their tolerances are
described in expected/README.md. Torch-free (numpy and scipy only), so verify.py starts fast.

- `records.py`    Check, Report, verdict words, calibration defaults
- `load.py`       an arm's per-fact effects, Known set and settings, from a results folder or an expected profile
- `statistics.py` paired differences, the per-layer band scaled by the run-to-run spread, correlations, peaks,
                  set overlaps, data sanity
- `checks.py`     the checks (curves, Known and traced sets, settings, claims)
- `verify.py`     `verify(results, expected)`: every possible check, and what was not possible and why
- `calibrate.py`  tolerances from replicate runs, and the detection power of perturbations
- `profile.py`    recording an expected profile
- `identity.py`   what an experiment is (model, weights, facts, profile settings), checked first
- `recompute.py`  trace files against their sha256 lists; aggregates and comparison recomputed from them
- `same_seed.py`  the same-seed tier: a rerun with the reference's noise, judged cell by cell
- `numerics.py`   its tolerance: the float64 bound on fp32 rounding, per metric
- `per_sample.py` recording a profile whose other-seed tier comes from its reference's own noise samples
- `report.py`     report.md, report.json and the terminal table
"""

from artifact.verification.calibrate import calibrate_tolerances, detection_power
from artifact.verification.checks import check_claims, check_known_set, check_settings, compare_arm_kind
from artifact.verification.load import ArmData, load_expected_arm, load_run_arm, load_tolerances
from artifact.verification.profile import record_profile
from artifact.verification.records import FAIL, INFO, PASS, SKIP, Check, Report, VerifyError
from artifact.verification.report import render_markdown, render_table, write_report
from artifact.verification.numerics import float64_differences, numerics_tolerances
from artifact.verification.per_sample import per_sample_tolerances
from artifact.verification.same_seed import borrow_same_seed_tier, calibrate_same_seed, update_same_seed
from artifact.verification.statistics import (
    band_multiplier,
    band_scale,
    band_statistic,
    known_changes,
    pearson,
    pearson_rows,
)
from artifact.verification.verify import conclude, verify

__all__ = [
    "ArmData", "Check", "FAIL", "INFO", "PASS", "Report", "SKIP", "VerifyError", "band_multiplier", "band_scale",
    "band_statistic", "borrow_same_seed_tier", "calibrate_same_seed", "calibrate_tolerances", "check_claims",
    "float64_differences", "numerics_tolerances", "per_sample_tolerances", "update_same_seed",
    "check_known_set", "check_settings", "compare_arm_kind", "conclude", "detection_power", "known_changes",
    "load_expected_arm", "load_run_arm", "load_tolerances", "pearson", "pearson_rows", "record_profile",
    "render_markdown", "render_table", "verify", "write_report",
]
