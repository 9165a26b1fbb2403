"""Aggregation of a run folder (tiny run): a manual mean, reproducibility, and an empty run."""


from __future__ import annotations

import numpy as np
import pytest

from artifact.analysis import aggregate as agg
from artifact.core.layout import result_path
from artifact.experiments.runner import open_run_dir
from tests.support.tiny_runs import tiny_settings


def test_aggregate_matches_a_manual_mean_and_is_reproducible(tiny_run, tmp_path):
    _, items, run_dir, _ = tiny_run
    doc = agg.aggregate_run(run_dir, n_resamples=500)
    csv_text = (run_dir / "aggregate" / "aie.csv").read_text()
    header = csv_text.splitlines()[0].split(",")
    assert header == list(agg.CSV_COLUMNS)
    L = 4
    # 3 kinds x 2 metrics x (6 groups x L layers + ATE)
    assert len(doc["rows"]) == 3 * 2 * (6 * L + 1)
    # manual: the last subject token's mlp AIE at layer 2, probability
    ies = []
    for fact, prompt in items:
        with np.load(result_path(run_dir, "mlp", fact.known_id)) as d:
            ies.append(d["scores"][prompt.subject_range[1] - 1, 2] - d["low_score"])
    row = next(r for r in doc["rows"] if (r["kind"], r["metric"], r["group"], r["layer"]) == ("mlp", "prob",
                                                                                               "last_subject", 2))
    assert row["aie"] == pytest.approx(np.mean(ies), abs=1e-12) and row["n_facts"] == 4
    middle = [r for r in doc["rows"] if r["group"] == "middle_subject" and r["kind"] == "hidden"]
    assert {r["n_facts"] for r in middle} == {2}  # only the two 3-token subjects have a middle token
    ate = next(r for r in doc["rows"] if r["effect"] == "ATE" and r["kind"] == "hidden" and r["metric"] == "prob")
    assert ate["n_facts"] == 4 and ate["aie"] > 0
    assert {r["condition"] for r in doc["severed_rows"]} == {"plain", "mlp", "attn"}
    effects = np.load(run_dir / "aggregate" / "group_effects.npz")
    assert effects["mlp_prob"].shape == (4, 6, L)
    again = agg.aggregate_run(run_dir, tmp_path / "again", n_resamples=500)
    assert (tmp_path / "again" / "aie.csv").read_text() == csv_text
    assert again["rows"] == doc["rows"]


def test_aggregate_of_an_empty_run_is_an_error(tmp_path):
    run_dir = open_run_dir(tmp_path, tiny_settings())
    with pytest.raises(FileNotFoundError, match="run"):
        agg.aggregate_run(run_dir)
