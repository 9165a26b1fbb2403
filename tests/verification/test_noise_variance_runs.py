"""bench/noise_variance.py --runs (issue 28, part 7): the within-run predicted variance against the observed
between-run variance from pipeline results folders (no tracing), on synthetic folders in the pipeline's layout whose
per-sample noise either is the whole seed-to-seed variation (calibrated: ratio near 1) or misses a per-run offset
(the prediction too small: ratio well above 1)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from tests.verification.test_per_sample_record import make_run

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench" / "noise_variance.py"


def bench_module():
    spec = importlib.util.spec_from_file_location("noise_variance", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_calibration_on_known_variances():
    """Per-sample data whose samples are the only noise give a ratio near 1; a per-run offset the samples do not see
    (variance 4x the predicted one) gives a ratio near 5."""
    rng = np.random.default_rng(3)
    honest = rng.normal(0, 1, (6, 20, 5, 400))  # [run, fact, sample, cell]
    result = bench_module().calibration(honest, resamples=200)
    assert result["cells"] == 400 and 0.85 < result["pooled_ratio"] < 1.15
    assert 0.0 < result["share_above_F95"] < 0.1
    lo, hi = result["pooled_ratio_noise_ci95"]
    assert lo < 1 < hi
    offset = honest + rng.normal(0, 2 * np.sqrt(1 / 20 / 5), (6, 1, 1, 400))  # 4 x var_s(curve) / S across runs
    assert 4 < bench_module().calibration(offset, resamples=200)["pooled_ratio"] < 6.5


def test_runs_mode_reads_results_folders(tmp_path, capsys):
    runs = [make_run(tmp_path / f"s{seed}", seed=seed) for seed in (1, 2, 3)]
    out = tmp_path / "calibration.json"
    assert bench_module().main(["--runs", *map(str, runs), "--metrics", "prob", "logprob", "--resamples", "200",
                                "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    rows = json.loads(out.read_text())["families"]
    assert set(rows) == {f"{arm}/{kind}/{metric}" for arm in ("t2t", "s2t") for kind in ("hidden", "mlp", "attn")
                         for metric in ("prob", "logprob")}
    for name, row in rows.items():
        assert (row["runs"], row["samples"]) == (3, 5) and row["facts"] in (30, 23)
        assert row["cells"] == 5 * 12  # the middle-subject group is empty for some facts: left out
        assert 0.4 < row["pooled_ratio"] < 2.5, name  # calibrated by construction
    assert "carry-over: some run has no carry-over results; left out" in printed
    assert "t2t/mlp/prob" in printed and "s2t/attn/logprob" in printed
    offset = [make_run(tmp_path / f"o{seed}", seed=seed, run_effect=1.0) for seed in (1, 2, 3)]
    assert bench_module().main(["--runs", *map(str, offset), "--resamples", "200", "--json", str(out)]) == 0
    assert all(row["pooled_ratio"] > 5 for row in json.loads(out.read_text())["families"].values())


@pytest.mark.parametrize("seeds, streams, needle", [
    ((1, 1), "per_sample", "the runs must use different noise seeds (t2t: seeds [1, 1])"),
    ((1, 2), "rome", "drew its noise from 'rome' streams: its samples are not independent draws"),
])
def test_runs_that_cannot_calibrate_are_refused(tmp_path, capsys, seeds, streams, needle):
    runs = [make_run(tmp_path / f"r{n}", seed=seed, streams=streams) for n, seed in enumerate(seeds)]
    assert bench_module().main(["--runs", *map(str, runs)]) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1
