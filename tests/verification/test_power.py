"""Checks that cannot fail say SKIP with the reason (issue 28, part 4), on the stored embedded smoke profile: its
weak curves' peak-shift allowances (16-23 of 30 layers) and correlation bounds (-1.0) were reported as PASS, one of
them as "closest to its tolerance"."""

from __future__ import annotations

from pathlib import Path

from artifact import verification as v
from artifact.verification.checks import compare_arm_kind
from artifact.verification.load import load_expected_arm, load_tolerances
from artifact.verification.report import render_markdown, render_table

PROFILE = Path(__file__).resolve().parents[2] / "expected" / "embedded-smoke"


def _shape_checks(arm: str, kind: str, metric: str) -> dict[tuple[str, str], v.Check]:
    tolerances = load_tolerances(PROFILE)
    data = load_expected_arm(PROFILE, arm)  # the profile against itself: every check that can fail passes
    checks = compare_arm_kind(data, data, kind, metric, tolerances, tolerances["groups"])
    return {(c.check, c.group): c for c in checks if c.check in ("peak_layer", "curve_correlation")}


def test_checks_without_power_are_skipped_with_the_reason():
    attn = _shape_checks("t2t", "attn", "prob")
    peak, corr = attn[("peak_layer", "last_subject")], attn[("curve_correlation", "last_subject")]
    assert peak.tolerance == 23 and peak.verdict == v.SKIP
    assert "no power: the allowed shift +/- 23 covers at least 0.5 of the 30 layers" in peak.detail
    assert corr.tolerance == -1.0 and corr.verdict == v.SKIP and "admits every correlation" in corr.detail
    flat = _shape_checks("s2t", "attn", "logprob")[("curve_correlation", "last_subject")]
    assert flat.verdict == v.SKIP and "flat expected curve" in flat.detail  # bound -0.956 on a flat curve
    # checks with power stay judged: the T->T MLP peak (allowance 4 layers) and its shape (bound 0.89)
    mlp = _shape_checks("t2t", "mlp", "prob")
    assert mlp[("peak_layer", "last_subject")].verdict == v.PASS
    assert mlp[("curve_correlation", "last_subject")].verdict == v.PASS


def test_skips_are_counted_apart_and_never_closest():
    checks = list(_shape_checks("t2t", "attn", "prob").values()) + list(_shape_checks("t2t", "mlp", "prob").values())
    report = v.conclude(v.Report("results", str(PROFILE), checks, ["curves"], {}))
    counts = report.to_dict()["counts"]
    assert report.verdict == v.PASS and counts["SKIP"] == 2 and counts["PASS"] == len(checks) - 2
    closest = [c["check"] for c in report.to_dict()["closest"]]
    assert closest and not any(name.endswith("t2t/attn/prob/last_subject") for name in closest)
    line = f"PASS {counts['PASS']}, FAIL 0, SKIP 2 (not judged)"
    assert f"- checks: {line}" in render_markdown(report)
    assert render_table(report).splitlines()[-1].startswith(f"verify: PASS ({line}; ")
