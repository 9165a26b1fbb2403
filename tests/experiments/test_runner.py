"""The runner: run folders keyed by settings, one file per fact and job equal to direct traces, resume, and
clear CLI errors. Tiny seeded models only (fast)."""


from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from artifact.core.layout import ResultsFolderError, result_path
from artifact.core.settings import load_settings
from artifact.experiments.runner import open_run_dir, parse_jobs, run_items
from artifact.tracing import TraceConfig, trace_fact
from tests.support.tiny_runs import tiny_settings

# ------------------------------------------------------------------------------------------ settings and folders


def test_changed_settings_get_another_folder(tmp_path):
    first = open_run_dir(tmp_path, tiny_settings())
    assert open_run_dir(tmp_path, tiny_settings()) == first
    assert load_settings(first) == tiny_settings()
    for change in (dict(samples=4), dict(window=5), dict(seed=2), dict(noise_spec="0.6", noise=0.6),
                   dict(batch_size=32), dict(model="other"), dict(facts_fingerprint="e" * 64), dict(arm="s2t"),
                   dict(positions="representatives:1")):
        other = open_run_dir(tmp_path, tiny_settings(**change))
        assert other != first, change
    assert len(list(tmp_path.iterdir())) == 10


def test_folder_with_other_settings_or_moved_noise_is_an_error(tmp_path):
    run_dir = open_run_dir(tmp_path, tiny_settings(noise_spec="3sigma", noise=0.3))
    with pytest.raises(ResultsFolderError, match="noise"):
        open_run_dir(tmp_path, tiny_settings(noise_spec="3sigma", noise=0.31))
    stored = json.loads((run_dir / "settings.json").read_text())
    stored["samples"] = 99
    (run_dir / "settings.json").write_text(json.dumps(stored))
    with pytest.raises(ResultsFolderError, match="other settings"):
        open_run_dir(tmp_path, tiny_settings(noise_spec="3sigma", noise=0.3))
    with pytest.raises(ResultsFolderError, match="not a results folder"):
        load_settings(tmp_path)


def test_settings_validation_and_job_names():
    with pytest.raises(ValueError, match="arm"):
        tiny_settings(arm="x2t")
    with pytest.raises(ValueError, match="samples"):
        tiny_settings(samples=0)
    with pytest.raises(ValueError, match="Unknown kind"):
        parse_jobs("hidden,mlps")
    assert parse_jobs("mlp, hidden,mlp") == ("mlp", "hidden")




def test_runner_writes_one_file_per_fact_and_job_equal_to_direct_traces(tiny_run):
    loaded, items, run_dir, summary = tiny_run
    assert len(summary.computed) == 16 and not summary.skipped
    for index, (fact, prompt) in enumerate(items):
        for kind in ("hidden", "mlp", "attn") if index == 0 else ("mlp",):
            with np.load(result_path(run_dir, kind, fact.known_id)) as data:
                direct = trace_fact(loaded.model, torch.tensor(prompt.input_ids), prompt.subject_range,
                                    prompt.target_id, TraceConfig(kind=kind, samples=3, noise=0.5, window=3,
                                                                  batch_size=24), loaded.adapter)
                np.testing.assert_array_equal(data["scores"], direct.scores)
                assert data["known_id"].item() == fact.known_id and str(data["prompt"]) == fact.prompt
                assert json.loads(str(data["config"]))["kind"] == kind
                assert data["token_labels"].shape == (len(prompt.input_ids),)
    assert not list(run_dir.rglob(".tmp-*"))
    plan = json.loads((run_dir / "plan.json").read_text())
    assert plan["known_ids"] == [10, 11, 12, 13] and plan["jobs"] == ["hidden", "mlp", "attn", "severed"]


def test_runner_resume_skips_finished_results(tiny_run):
    loaded, items, run_dir, _ = tiny_run
    victim = result_path(run_dir, "mlp", 11)
    victim.unlink()
    before = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in run_dir.rglob("*.npz")}
    summary = run_items(loaded, items, tiny_settings(), run_dir, ("hidden", "mlp", "attn", "severed"), progress=False)
    assert summary.computed == [(11, "mlp")] and len(summary.skipped) == 15
    after = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in run_dir.rglob("*.npz")}
    assert victim in after and {p: after[p] for p in before} == before


def test_runner_refuses_a_folder_of_other_settings(tiny_run, tmp_path):
    loaded, items, run_dir, _ = tiny_run
    with pytest.raises(ResultsFolderError):
        run_items(loaded, items, tiny_settings(samples=4), run_dir, ("hidden",), progress=False)




# ------------------------------------------------------------------------------------------------------- CLI


def test_cli_errors_are_clear(tmp_path, capsys):
    from artifact.cli import main

    assert main(["run", "--kinds", "hidden,mlpx", "--out", str(tmp_path)]) == 2
    assert "Unknown kind" in capsys.readouterr().err
    assert main(["aggregate", "--results", str(tmp_path / "nope")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["plot", "--results", str(tmp_path)]) == 2
    assert "not a results folder" in capsys.readouterr().err
    assert main(["run", "--positions", "half", "--out", str(tmp_path)]) == 2
    assert "representatives:K" in capsys.readouterr().err
