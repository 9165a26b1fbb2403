"""Experiments: token groups, run folders keyed by settings, the runner's files and resume, aggregation statistics,
the severed path against a plain two-pass computation, figures and CLI errors. Tiny seeded models only (fast)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from artifact.analysis import aggregate as agg
from artifact.core.groups import positions_for, representative_positions, token_groups
from artifact.core.layout import ResultsFolderError, result_path
from artifact.core.names import GROUPS
from artifact.core.settings import RunSettings, load_settings
from artifact.experiments.runner import open_run_dir, parse_jobs, run_items
from artifact.models import ModelAdapter
from artifact.models.adapters import main_tensor
from artifact.prompts.build import TracePrompt
from artifact.tracing import TraceConfig, trace_fact
from artifact.tracing.severed import severed_trace

# ------------------------------------------------------------------------------------------------ token groups


def test_groups_multi_token_subject_in_the_middle():
    # tokens: 0 BOS, 1 The, [2 3 4 5] subject, 6 is, 7 in, 8 the, 9 city (last)
    g = token_groups(10, (2, 6))
    assert g == {"first_subject": [2], "middle_subject": [3, 4], "last_subject": [5], "first_subsequent": [6],
                 "further": [7, 8], "last": [9]}


def test_groups_one_token_subject_first_equals_last_middle_empty():
    g = token_groups(6, (1, 2))
    assert g["first_subject"] == g["last_subject"] == [1]
    assert g["middle_subject"] == []
    assert g["first_subsequent"] == [2] and g["further"] == [3, 4] and g["last"] == [5]


def test_groups_two_token_subject_has_no_middle():
    assert token_groups(6, (1, 3))["middle_subject"] == []


def test_groups_subject_at_the_start_of_the_prompt():
    g = token_groups(5, (0, 2))
    assert g["first_subject"] == [0] and g["last_subject"] == [1] and g["first_subsequent"] == [2]
    assert g["further"] == [3] and g["last"] == [4]


def test_groups_subject_right_before_the_last_token():
    g = token_groups(5, (1, 4))  # subject 1..3, last token 4 is the first subsequent token too
    assert g["first_subsequent"] == [4] == g["last"]
    assert g["further"] == []


def test_groups_subject_at_the_end_of_the_prompt():
    g = token_groups(5, (2, 5))  # the subject reaches the last token
    assert g["last_subject"] == [4] == g["last"]
    assert g["first_subsequent"] == [] and g["further"] == []


def test_groups_last_position_other_than_final_token_and_bad_ranges():
    g = token_groups(8, (1, 3), last_position=5)
    assert g["last"] == [5] and g["further"] == [4]
    with pytest.raises(ValueError, match="subject_range"):
        token_groups(5, (3, 3))
    with pytest.raises(ValueError, match="last_position"):
        token_groups(5, (1, 2), last_position=7)


def test_representative_positions_cover_every_group():
    positions = representative_positions(40, (3, 20), k=2)
    g = token_groups(40, (3, 20))
    for name, members in g.items():
        assert set(members) & set(positions), name
    assert len(positions) == 1 + 2 + 1 + 1 + 2 + 1
    assert positions_for("all", 40, (3, 20)) is None
    assert positions_for("representatives:100", 10, (1, 4)) == tuple(range(1, 10))
    with pytest.raises(ValueError, match="representatives:K"):
        positions_for("some", 10, (1, 4))


def test_group_effects_nan_mean_over_untraced_positions():
    ie = np.arange(10 * 3, dtype=float).reshape(10, 3)
    ie[3] = np.nan  # an untraced middle subject token
    out = agg.group_effects(ie, (2, 6))
    np.testing.assert_array_equal(out[GROUPS.index("middle_subject")], ie[4])
    np.testing.assert_array_equal(out[GROUPS.index("further")], ie[[7, 8]].mean(axis=0))
    one = agg.group_effects(ie, (1, 2))
    assert np.isnan(one[GROUPS.index("middle_subject")]).all()


# ------------------------------------------------------------------------------------------------- statistics


def test_bootstrap_ci_contains_true_mean_and_has_near_nominal_coverage():
    rng = np.random.default_rng(123)
    true_mean = 0.05
    hits, widths = 0, []
    for _ in range(40):
        data = rng.exponential(true_mean, size=(60, 3))  # skewed per-fact effects, 3 layers
        n, mean, low, high, methods = agg.bootstrap_mean_ci(data, n_resamples=2000)
        assert (n == 60).all() and methods == ["BCa"] * 3
        assert np.all(low < mean) and np.all(mean < high)
        hits += int(((low <= true_mean) & (true_mean <= high)).sum())
        widths.append(np.mean(high - low))
    assert hits / (40 * 3) >= 0.85  # nominal 95%; a broken interval (e.g. 50%) fails this
    big = rng.exponential(true_mean, size=(960, 1))
    _, _, lo, hi, _ = agg.bootstrap_mean_ci(big, n_resamples=2000)
    assert (hi - lo)[0] < np.mean(widths) / 2  # 16x the facts: about a quarter of the width


def test_bootstrap_handles_nan_facts_degenerate_and_tiny_columns():
    data = np.array([[1.0, 2.0, np.nan], [2.0, 2.0, np.nan], [np.nan, 2.0, 5.0], [3.0, 2.0, np.nan]])
    n, mean, low, high, methods = agg.bootstrap_mean_ci(data, n_resamples=500)
    assert list(n) == [3, 4, 1]
    assert mean[0] == pytest.approx(2.0) and low[0] <= 2.0 <= high[0]
    assert (low[1], high[1]) == (2.0, 2.0) and methods[1].startswith("degenerate")
    assert np.isnan(low[2]) and methods[2].startswith("none")


def test_bootstrap_is_deterministic():
    data = np.random.default_rng(0).normal(size=(30, 4))
    a = agg.bootstrap_mean_ci(data, n_resamples=1000)
    b = agg.bootstrap_mean_ci(data, n_resamples=1000)
    for x, y in zip(a[:4], b[:4]):
        np.testing.assert_array_equal(x, y)


# ------------------------------------------------------------------------------------------ settings and folders


def settings(**changes) -> RunSettings:
    base = dict(arm="t2t", model="tiny", dtype="torch.float32", device="cpu", facts_fingerprint="f" * 64,
                noise_spec="0.5", noise=0.5, samples=3, window=3, seed=1, batch_size=24, positions="all")
    base.update(changes)
    return RunSettings(**base)


def test_changed_settings_get_another_folder(tmp_path):
    first = open_run_dir(tmp_path, settings())
    assert open_run_dir(tmp_path, settings()) == first
    assert load_settings(first) == settings()
    for change in (dict(samples=4), dict(window=5), dict(seed=2), dict(noise_spec="0.6", noise=0.6),
                   dict(batch_size=32), dict(model="other"), dict(facts_fingerprint="e" * 64), dict(arm="s2t"),
                   dict(positions="representatives:1")):
        other = open_run_dir(tmp_path, settings(**change))
        assert other != first, change
    assert len(list(tmp_path.iterdir())) == 10


def test_folder_with_other_settings_or_moved_noise_is_an_error(tmp_path):
    run_dir = open_run_dir(tmp_path, settings(noise_spec="3sigma", noise=0.3))
    with pytest.raises(ResultsFolderError, match="noise"):
        open_run_dir(tmp_path, settings(noise_spec="3sigma", noise=0.31))
    stored = json.loads((run_dir / "settings.json").read_text())
    stored["samples"] = 99
    (run_dir / "settings.json").write_text(json.dumps(stored))
    with pytest.raises(ResultsFolderError, match="other settings"):
        open_run_dir(tmp_path, settings(noise_spec="3sigma", noise=0.3))
    with pytest.raises(ResultsFolderError, match="not a results folder"):
        load_settings(tmp_path)


def test_settings_validation_and_job_names():
    with pytest.raises(ValueError, match="arm"):
        settings(arm="x2t")
    with pytest.raises(ValueError, match="samples"):
        settings(samples=0)
    with pytest.raises(ValueError, match="Unknown kind"):
        parse_jobs("hidden,mlps")
    assert parse_jobs("mlp, hidden,mlp") == ("mlp", "hidden")


# ------------------------------------------------------------------------------------------------ tiny runs


@dataclass(frozen=True)
class StandInFact:
    """Stand-in for artifact.facts.Fact (the runner only reads these fields)."""

    known_id: int
    subject: str
    attribute: str
    prompt: str
    relation_id: str = "P0"


class IdTokenizer:
    def decode(self, ids):
        return " ".join(f"t{i}" for i in ids)


@dataclass
class TinyLoaded:
    name: str
    model: torch.nn.Module
    tokenizer: object
    adapter: ModelAdapter


def tiny_items(model) -> list[tuple[StandInFact, TracePrompt]]:
    """Prompts of different shapes: multi-token subject, one-token subject, subject at the start and at the end."""
    specs = [([5, 17, 42, 8, 33, 61, 2, 90, 14], (2, 5)), ([7, 3, 11, 19, 23], (1, 2)),
             ([44, 45, 46, 12, 13, 14], (0, 2)), ([9, 8, 7, 6, 5, 4], (3, 6))]
    items = []
    for i, (ids, subject) in enumerate(specs):
        with torch.no_grad():
            target = int(model(torch.tensor([ids])).logits[0, -1].argmax())
        prompt = TracePrompt(text=f"prompt {i}", input_ids=tuple(ids), subject_range=subject, target_id=target,
                             modality="text")
        items.append((StandInFact(10 + i, f"s{i}", f"a{i}", f"prompt {i}"), prompt))
    return items


@pytest.fixture(scope="module")
def tiny_run_once(tmp_path_factory, llama_tiny):
    loaded = TinyLoaded("tiny", llama_tiny, IdTokenizer(), ModelAdapter(llama_tiny))
    run_dir = open_run_dir(tmp_path_factory.mktemp("run") / "results", settings())
    items = tiny_items(llama_tiny)
    summary = run_items(loaded, items, settings(), run_dir, ("hidden", "mlp", "attn", "severed"), progress=False)
    return loaded, items, run_dir, summary


@pytest.fixture
def tiny_run(tiny_run_once, tmp_path):
    """A private copy of the module's tiny run (tests may change it)."""
    import shutil

    loaded, items, run_dir, summary = tiny_run_once
    copy = tmp_path / "results" / run_dir.name
    shutil.copytree(run_dir, copy)
    return loaded, items, copy, summary


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
    summary = run_items(loaded, items, settings(), run_dir, ("hidden", "mlp", "attn", "severed"), progress=False)
    assert summary.computed == [(11, "mlp")] and len(summary.skipped) == 15
    after = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in run_dir.rglob("*.npz")}
    assert victim in after and {p: after[p] for p in before} == before


def test_runner_refuses_a_folder_of_other_settings(tiny_run, tmp_path):
    loaded, items, run_dir, _ = tiny_run
    with pytest.raises(ResultsFolderError):
        run_items(loaded, items, settings(samples=4), run_dir, ("hidden",), progress=False)


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
    run_dir = open_run_dir(tmp_path, settings())
    with pytest.raises(FileNotFoundError, match="run"):
        agg.aggregate_run(run_dir)


def test_figures_are_written_as_png_and_pdf(tiny_run):
    from artifact.figures.run import plot_run

    _, _, run_dir, _ = tiny_run
    agg.aggregate_run(run_dir, n_resamples=200)
    written = plot_run(run_dir, per_fact=1, metrics=("prob",))
    names = {p.name for p in written}
    for stem in ("aie_heatmap_hidden_prob", "aie_heatmap_mlp_prob", "aie_heatmap_attn_prob", "aie_layers_prob",
                 "severed_prob", "fact-10-mlp"):
        assert {f"{stem}.png", f"{stem}.pdf"} <= names, stem
    assert all(p.stat().st_size > 1000 for p in written)


# ----------------------------------------------------------------------------------------------- severed path


def repatch_reference(model, input_ids, subject_range, target_id, config, token, layer, sever):
    """ROME's `trace_with_repatch`, one cell, plainly: pass 1 records the corrupted run's `sever` outputs; pass 2
    corrupts again, restores the block output at (token, layer) from the clean row 0 and overwrites `sever`'s output
    at `token` in every layer with pass 1's corrupted value. Rows: 0 clean, 1.. corrupted."""
    adapter = ModelAdapter(model)
    b, e = subject_range
    L = adapter.num_layers
    batch = input_ids[None].repeat(config.samples + 1, 1)

    def corrupt(_m, _i, output):
        rs = np.random.RandomState(config.seed)
        output[1:, b:e] += config.noise * torch.from_numpy(rs.randn(config.samples, e - b, output.shape[2]))
        return output

    recorded = {}

    def record(layer_):
        def hook(_m, _i, output):
            recorded[layer_] = main_tensor(output).detach().clone()
        return hook

    handles = [adapter.embed.register_forward_hook(corrupt)]
    if sever:
        handles += [adapter.module(sever, ly).register_forward_hook(record(ly)) for ly in range(L)]
    with torch.no_grad():
        model(input_ids=batch)
    for h in handles:
        h.remove()

    def restore(_m, _i, output):
        h = main_tensor(output)
        h[1:, token] = h[0, token]
        return output

    def freeze(layer_):
        def hook(_m, _i, output):
            main_tensor(output)[1:, token] = recorded[layer_][1:, token]
            return output
        return hook

    handles = [adapter.embed.register_forward_hook(corrupt), adapter.module("hidden", layer).register_forward_hook(restore)]
    if sever:
        handles += [adapter.module(sever, ly).register_forward_hook(freeze(ly)) for ly in range(L)]
    with torch.no_grad():
        logits = model(input_ids=batch).logits[1:, -1].float()
    for h in handles:
        h.remove()
    return float(torch.softmax(logits, dim=-1)[:, target_id].mean())


@pytest.mark.parametrize("family", ["llama_tiny", "gpt2_tiny"])
def test_severed_path_equals_plain_two_pass_computation(request, family):
    model = request.getfixturevalue(family)
    ids = torch.tensor([5, 17, 42, 8, 33, 61, 2, 90, 14])
    with torch.no_grad():
        target = int(model(ids[None]).logits[0, -1].argmax())
    config = TraceConfig(kind="hidden", samples=4, noise=0.5, batch_size=20)
    result = severed_trace(model, ids, (2, 5), target, config)
    assert result.token == 4
    for condition, sever in (("plain", None), ("mlp", "mlp"), ("attn", "attn")):
        expected = [repatch_reference(model, ids, (2, 5), target, config, 4, layer, sever) for layer in range(4)]
        np.testing.assert_allclose(result.scores[condition], expected, atol=1e-5, rtol=0)
    # Severing must change something on these models, or the comparison above would be vacuous.
    assert np.max(np.abs(result.scores["mlp"] - result.scores["plain"])) > 1e-3
    # Restoring the last layer's hidden state leaves nothing to sever.
    assert result.scores["mlp"][-1] == pytest.approx(result.scores["plain"][-1], abs=1e-6)


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
