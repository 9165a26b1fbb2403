"""Recompute, don't trust: verify checks the traces against the sha256 list the aggregate step wrote, and requires
the stored aggregates and comparison to equal what the artifact's own code recomputes from them. Each corruption
below passed the old verify (it never read the traces); each must now FAIL and name the right file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from artifact.analysis.aggregate import aggregate_run
from artifact.analysis.compare import compare_runs
from artifact.core.digests import read_digest_list
from artifact.core.fileio import write_json_atomic, write_npz_atomic
from artifact.core.layout import AGGREGATE_DIR, EFFECTS_FILE, TRACE_LIST_FILE, result_path
from artifact.verification.recompute import check_recomputed
from tests.support.fake_runs import fake_run


@pytest.fixture(scope="module")
def pipeline_folder(tmp_path_factory) -> Path:
    """A results folder in the pipeline's layout: two arms' traces, their aggregates and the comparison."""
    out = tmp_path_factory.mktemp("pipeline") / "embedded-smoke"
    t2t = fake_run(out / "runs", "t2t", range(10, 22), 0, 0.3)
    s2t = fake_run(out / "runs", "s2t", range(14, 26), 1, 0.05)
    for run_dir in (t2t, s2t):
        aggregate_run(run_dir, kinds=("mlp", "attn"))
    compare_runs(t2t, s2t, out / "comparison", kinds=("mlp", "attn"))
    write_json_atomic(out / "selection.json", {"t2t_run": t2t.name, "s2t_run": s2t.name})
    return out


@pytest.fixture
def results(pipeline_folder, tmp_path) -> Path:
    copy = tmp_path / pipeline_folder.name
    shutil.copytree(pipeline_folder, copy)
    return copy


def run_dir(results: Path, arm: str) -> Path:
    return results / "runs" / json.loads((results / "selection.json").read_text())[f"{arm}_run"]


def failed(checks) -> dict[str, str]:
    return {f"{c.check}:{c.arm}": c.detail for c in checks if c.verdict == "FAIL"}


def test_an_honest_folder_recomputes_identically(results):
    checks = check_recomputed(results)
    assert [(c.check, c.arm, c.verdict) for c in checks] == [
        ("trace_files", "t2t", "PASS"), ("trace_files", "s2t", "PASS"), ("aggregate_fresh", "t2t", "PASS"),
        ("aggregate_fresh", "s2t", "PASS"), ("comparison_fresh", None, "PASS")]
    listed = read_digest_list(run_dir(results, "t2t") / AGGREGATE_DIR / TRACE_LIST_FILE)
    assert len(listed) == 24 and all(name.startswith("traces/") for name in listed)  # 12 facts x 2 kinds


def test_two_facts_traces_swapped(results):
    t2t = run_dir(results, "t2t")
    a, b = result_path(t2t, "mlp", 10), result_path(t2t, "mlp", 11)
    a_bytes, b_bytes = a.read_bytes(), b.read_bytes()
    a.write_bytes(b_bytes)
    b.write_bytes(a_bytes)
    fails = failed(check_recomputed(results))
    assert set(fails) == {"trace_files:t2t"} and "changed since aggregation" in fails["trace_files:t2t"]
    assert "traces/mlp/" in fails["trace_files:t2t"]


@pytest.mark.parametrize("damage", ["truncate", "delete", "add"])
def test_trace_files_changed_after_aggregation(results, damage):
    s2t = run_dir(results, "s2t")
    path = result_path(s2t, "attn", 20)
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:100])
    elif damage == "delete":
        path.unlink()
    else:
        shutil.copy(path, result_path(s2t, "attn", 99))
    detail = failed(check_recomputed(results))["trace_files:s2t"]
    word = {"truncate": "changed since aggregation", "delete": "missing", "add": "not aggregated"}[damage]
    assert word in detail and s2t.name in detail


def test_a_missing_list_names_the_step_that_writes_it(results):
    (run_dir(results, "t2t") / AGGREGATE_DIR / TRACE_LIST_FILE).unlink()
    detail = failed(check_recomputed(results))["trace_files:t2t"]
    assert TRACE_LIST_FILE in detail and "aggregate step" in detail


def test_an_edited_aggregate_is_stale(results):
    """Log-prob effects x0.5 in the stored aggregate (the old verify checked prob only)."""
    path = run_dir(results, "t2t") / AGGREGATE_DIR / EFFECTS_FILE
    with np.load(path) as data:
        arrays = {key: data[key] for key in data.files}
    arrays["mlp_logprob"] = arrays["mlp_logprob"] * 0.5
    write_npz_atomic(path, arrays)
    fails = failed(check_recomputed(results))
    assert set(fails) == {"aggregate_fresh:t2t"} and "mlp_logprob" in fails["aggregate_fresh:t2t"]
    assert EFFECTS_FILE in fails["aggregate_fresh:t2t"]


@pytest.mark.parametrize("edit", ["verdict", "statistic", "arms swapped"])
def test_an_edited_comparison_is_stale(results, edit):
    path = results / "comparison" / "comparison.json"
    doc = json.loads(path.read_text())
    if edit == "verdict":
        was = doc["claims"]["C2"]["verdict"]
        doc["claims"]["C2"]["verdict"] = "supported" if was != "supported" else "inconclusive"
    elif edit == "statistic":
        doc["claims"]["C1"]["conditions"][0]["ci_low"] += 0.01
    else:
        doc["settings"] = {"t2t": doc["settings"]["s2t"], "s2t": doc["settings"]["t2t"]}
    write_json_atomic(path, doc)
    detail = failed(check_recomputed(results))["comparison_fresh:None"]
    assert "comparison.json" in detail and "stale or edited" in detail
    assert {"verdict": "/claims/C2/verdict", "statistic": "/claims/C1/conditions[0]/ci_low",
            "arms swapped": "/settings/"}[edit] in detail


def test_a_moved_results_folder_still_recomputes(results, tmp_path):
    moved = tmp_path / "elsewhere" / "embedded-smoke"
    shutil.move(str(results), moved)
    assert not failed(check_recomputed(moved))


def test_an_arm_read_from_its_traces_equals_its_aggregate(results):
    """load_arm_from_traces (the float64 bound and the seed benches read unaggregated runs with it) gives the
    aggregate's arrays and fact order, bit for bit, from the trace files alone."""
    from artifact.verification.load import load_arm_from_traces, load_run_arm

    for arm in ("t2t", "s2t"):
        write_json_atomic(run_dir(results, arm) / "known.json", {"checks": []})  # fake_run writes none
        aggregated, from_traces = load_run_arm(results, arm), load_arm_from_traces(results, arm)
        assert from_traces.fact_ids == aggregated.fact_ids and sorted(from_traces.effects) == sorted(aggregated.effects)
        for name, array in aggregated.effects.items():
            np.testing.assert_array_equal(from_traces.effects[name], array)
        assert from_traces.samples == aggregated.samples == {}  # these traces keep no per-sample arrays
        only_mlp = load_arm_from_traces(results, arm, kinds=("mlp",))
        assert list(only_mlp.fact_ids) == ["mlp"] and sorted(only_mlp.effects) == ["mlp_logprob", "mlp_prob"]
        np.testing.assert_array_equal(only_mlp.effects["mlp_prob"], aggregated.effects["mlp_prob"])
        with pytest.raises(ValueError, match="unknown trace kind.*'mlps'.*hidden, mlp, attn"):
            load_arm_from_traces(results, arm, kinds=("mlps",))
        shutil.rmtree(run_dir(results, arm) / AGGREGATE_DIR)
        assert load_arm_from_traces(results, arm).fact_ids == aggregated.fact_ids  # no aggregate needed


def test_two_long_sentences_that_differ_late_show_where_they_part():
    """A recomputed document whose sentence differs after its first 40 characters names the place, not two
    equal-looking prefixes (as a prose change between code versions once printed)."""
    from artifact.verification.recompute import json_differences

    lead = "Measured by the logit difference under token replacement: "
    differ = list(json_differences({"sentences": {"logit_diff": lead + "Not measured: 2 facts"}},
                                   {"sentences": {"logit_diff": lead + "not measured either"}}))
    assert differ == [f"/sentences/logit_diff (from character {len(lead)}: '...lacement: Not measured: 2 facts' != "
                      "'...lacement: not measured either')"]
    assert list(json_differences({"a": "x"}, {"a": "x"})) == []
