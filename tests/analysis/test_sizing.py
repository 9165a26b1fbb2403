"""Sizing a profile from a finished run: facts needed for CIs narrower than half the effect."""

import json
import math

from artifact.analysis.sizing import facts_needed
from artifact.cli import main


def _comparison() -> dict:
    def condition(value, low, high, requirement, kind="mlp"):
        return {"kind": kind, "statistic": f"stat {value}", "value": value, "ci_low": low, "ci_high": high,
                "requirement": requirement}
    return {"claims": {
        "C1": {"conditions": [condition(0.2, 0.1, 0.3, "> 0"), condition(0.3, 0.3, 0.4, "within 0.1-0.7")]},
        "C2": {"conditions": [condition(0.5, 0.25, 0.75, "< 1"), condition(0.0, -0.1, 0.1, "> 0")]},
    }}


def test_facts_needed_scales_the_ci_width_to_half_the_effect():
    rows = facts_needed(_comparison(), traced=12)
    assert [r["claim"] for r in rows] == ["C1", "C2", "C2"]  # the layer band is not an effect
    c1, ratio, flat = rows
    assert math.isclose(c1["facts_needed"], 12 * (2 * 0.2 / 0.2) ** 2)  # width 0.2 around 0.2: 4x the facts
    assert math.isclose(ratio["effect"], 0.5) and math.isclose(ratio["facts_needed"], 12 * (2 * 0.5 / 0.5) ** 2)
    assert flat["facts_needed"] == math.inf  # a value on its threshold can never be resolved


def test_cost_size_from_reads_a_results_folder(tmp_path, capsys):
    (tmp_path / "comparison").mkdir()
    (tmp_path / "comparison" / "comparison.json").write_text(json.dumps(_comparison()))
    (tmp_path / "selection.json").write_text(json.dumps({"traced": [str(i) for i in range(12)]}))
    assert main(["cost", "--size-from", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "12 facts traced" in out and "n > 48" in out and "unreachable" in out
    (tmp_path / "selection.json").write_text(json.dumps({"traced": "each arm's own known facts"}))
    assert main(["cost", "--size-from", str(tmp_path)]) == 2
    assert "profile full" in capsys.readouterr().err
    assert main(["cost", "--size-from", str(tmp_path / "absent")]) == 2
    assert "is missing" in capsys.readouterr().err
