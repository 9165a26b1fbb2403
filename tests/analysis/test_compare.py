"""The modality comparison: paired bootstrap, claim verdicts, length-normalised view, run folders end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from artifact.analysis import claims, compare, normalised
from artifact.core.fileio import write_npz_atomic
from artifact.core.layout import ResultsFolderError, result_path
from artifact.core.names import GROUPS
from artifact.core.settings import RunSettings
from artifact.experiments.runner import open_run_dir

B = 1000  # bootstrap resamples in tests
G, L = len(GROUPS), 12


# ------------------------------------------------------------------------------------------- paired bootstrap


def test_paired_bootstrap_recovers_a_known_difference():
    rng = np.random.default_rng(1)
    t2t = rng.normal(0.2, 0.1, (60, 8))  # large between-fact spread, shared by both arms
    noise = rng.normal(0, 0.01, (60, 8))
    s2t = t2t + 0.05 + noise - noise.mean(axis=0)  # per-fact differences vary; their mean is exactly 0.05
    truth = np.full(8, 0.05)
    d = compare.paired_difference(t2t, s2t, n_resamples=B)
    mean, low, high = (np.array(d[k]) for k in ("mean", "ci_low", "ci_high"))
    np.testing.assert_allclose(mean, truth, atol=1e-12)
    assert np.all(high - low < 0.02)  # and tightly
    assert np.all(low <= 0.05) and np.all(high >= 0.05)  # contains the true difference
    assert np.all(low > 0)  # excludes 0 although the unpaired spread (0.1 / sqrt(60)) would not
    band_low, band_high = np.array(d["band_low"]), np.array(d["band_high"])
    assert np.all(band_low <= low) and np.all(band_high >= high)  # simultaneous band is wider than pointwise
    assert d["band_critical_value"] > 1.96
    assert d["paired"] and d["n_facts"] == [60] * 8


def test_paired_bootstrap_of_zero_difference_contains_zero():
    rng = np.random.default_rng(2)
    t2t = rng.normal(0.2, 0.1, (50, 6))
    noise = rng.normal(0, 0.02, (50, 6))
    s2t = t2t + noise - noise.mean(axis=0)  # the per-layer mean difference is exactly 0
    d = compare.paired_difference(t2t, s2t, n_resamples=B)
    assert np.all(np.array(d["ci_low"]) < 0) and np.all(np.array(d["ci_high"]) > 0)
    assert np.all(np.array(d["band_low"]) < 0) and np.all(np.array(d["band_high"]) > 0)
    np.testing.assert_allclose(d["mean"], 0, atol=1e-12)


def test_paired_bootstrap_is_deterministic_and_handles_nan_and_bad_shapes():
    rng = np.random.default_rng(3)
    t2t, s2t = rng.normal(size=(20, 4)), rng.normal(size=(20, 4))
    t2t[:5, 1] = np.nan  # e.g. a group empty for some facts in one arm
    a = compare.paired_difference(t2t, s2t, n_resamples=B)
    b = compare.paired_difference(t2t, s2t, n_resamples=B)
    assert a == b
    assert a["n_facts"] == [20, 15, 20, 20]
    with pytest.raises(ValueError, match="same shape"):
        compare.paired_difference(t2t, s2t[:10])


def test_normalised_entropy_bounds():
    assert compare.normalised_entropy(np.array([0.0, 1.0, 0.0, 0.0])) == pytest.approx(0.0)
    assert compare.normalised_entropy(np.array([1.0, 1.0, 1.0, 1.0])) == pytest.approx(1.0)
    assert compare.normalised_entropy(np.array([1.0, -5.0, 1.0, np.nan])) == pytest.approx(0.5)
    assert np.isnan(compare.normalised_entropy(np.array([-1.0, 0.0])))


# ---------------------------------------------------------------------------------------------------- claims


def localised(n: int, rng) -> np.ndarray:
    """Per-fact effects [fact, group, layer] with a strong, narrow mid-layer peak at the last subject token."""
    x = rng.normal(0, 0.02, (n, G, L))
    x[:, GROUPS.index("last_subject"), 4] += 0.3 + rng.normal(0, 0.05, n)
    x[:, GROUPS.index("last_subject"), [3, 5]] += 0.15
    return x


def diffuse(n: int, rng) -> np.ndarray:
    """Weak effects spread over every group, a broad late bump over the subject tokens."""
    x = rng.normal(0, 0.01, (n, G, L)) + 0.01
    x[:, :3, :] += 0.04 * np.exp(-0.5 * ((np.arange(L) - 10) / 2.5) ** 2)
    return x


def document(t2t: np.ndarray, s2t: np.ndarray) -> dict:
    result = compare.compare_arrays(t2t, s2t, paired=True, n_resamples=B)
    own = compare.compare_arrays(t2t, s2t, paired=False, n_resamples=B)
    return {"metric": "prob", "bootstrap": {"n_resamples": B},
            "results": {"both": {k: result for k in ("hidden", "mlp", "attn")},
                        "own": {k: own for k in ("hidden", "mlp", "attn")}}}


def test_claim_verdicts_flip_when_the_arms_are_swapped():
    rng = np.random.default_rng(4)
    text, speech = localised(40, rng), diffuse(40, rng)
    forward = claims.evaluate_claims(document(text, speech))
    assert {c: v["verdict"] for c, v in forward.items()} == {"C1": "supported", "C2": "supported",
                                                              "C3": "supported"}
    swapped = claims.evaluate_claims(document(speech, text))
    # T->T now peaks late and diffusely (C1), S->T is higher and more concentrated (C2); both stay localised (C3).
    assert swapped["C1"]["verdict"] == "not supported"
    assert swapped["C2"]["verdict"] == "not supported"
    assert swapped["C3"]["verdict"] == "supported"
    c2 = {c["statistic"]: c for c in forward["C2"]["conditions"] if c["kind"] == "mlp"}
    assert c2["overall peak ratio S->T / T->T"]["ci_high"] < 1
    assert c2["entropy S->T - T->T"]["ci_low"] > 0


def test_localisation_claim_flips_with_the_arms():
    rng = np.random.default_rng(7)
    text = localised(40, rng)
    elsewhere = rng.normal(0, 0.01, (40, G, L))
    elsewhere[:, GROUPS.index("further"), 6:9] += 0.05  # S->T effect away from the subject
    forward = claims.evaluate_claims(document(text, elsewhere))
    assert forward["C3"]["verdict"] == "not supported"
    assert claims.evaluate_claims(document(elsewhere, text))["C3"]["verdict"] == "supported"


def test_claims_are_inconclusive_without_signal():
    rng = np.random.default_rng(5)
    noise_t, noise_s = rng.normal(0, 0.05, (30, G, L)), rng.normal(0, 0.05, (30, G, L))
    verdicts = claims.evaluate_claims(document(noise_t, noise_s))
    assert verdicts["C1"]["verdict"] in ("inconclusive", "not supported")
    assert verdicts["C3"]["verdict"] in ("inconclusive", "not supported")
    text = claims.summary_markdown({**document(noise_t, noise_s), "claims": verdicts})
    assert "C1" in text and "95% CI" in text


def test_summary_is_generated_from_the_numbers():
    rng = np.random.default_rng(6)
    doc = document(localised(30, rng), diffuse(30, rng))
    doc["claims"] = claims.evaluate_claims(doc)
    text = claims.summary_markdown(doc)
    ratio = doc["results"]["both"]["mlp"]["overall_peak_ratio"]
    assert f"{ratio['value']:.4g}" in text and f"{ratio['ci_high']:.4g}" in text
    assert text.count("**Verdict: supported**") == 3


# ---------------------------------------------------------------------------------------- normalised view


def test_bin_weights_average_and_repeat():
    np.testing.assert_allclose(normalised.bin_weights(4, 2), [[0.5, 0.5, 0, 0], [0, 0, 0.5, 0.5]])
    np.testing.assert_allclose(normalised.bin_weights(1, 3), [[1], [1], [1]])
    w = normalised.bin_weights(3, 2)  # token 1 straddles both bins
    np.testing.assert_allclose(w, [[2 / 3, 1 / 3, 0], [0, 1 / 3, 2 / 3]])
    np.testing.assert_allclose(w.sum(axis=1), 1)


def test_normalise_fact_excludes_tokens_before_the_subject():
    ie = np.arange(10, dtype=float)[:, None] * np.ones((1, 2))  # [pos, layer], value = position
    out = normalised.normalise_fact(ie, (2, 4), 9, subject_bins=2, rest_bins=3)
    np.testing.assert_allclose(out[:, 0], [2, 3, 4.5, 6.5, 8.5])
    at_end = normalised.normalise_fact(ie, (7, 10), 9, subject_bins=2, rest_bins=3)
    assert np.isnan(at_end[2:]).all()


# ------------------------------------------------------------------------------------------- run folders


def settings(arm: str, fingerprint: str = "f" * 64, positions: str = "all") -> RunSettings:
    return RunSettings(arm=arm, model="tiny", dtype="torch.float32", device="cpu", facts_fingerprint=fingerprint,
                       noise_spec="0.1", noise=0.1, samples=2, window=2, positions=positions)


def fake_run(root: Path, arm: str, ids, seed: int, strength: float, **kw) -> Path:
    """A run folder with one npz per fact and kind, in the runner's format."""
    rng = np.random.default_rng(seed)
    run_dir = open_run_dir(root, settings(arm, **kw))
    for known_id in ids:
        n_tok = int(rng.integers(7, 12)) if arm == "t2t" else int(rng.integers(14, 20))
        b = 1
        e = b + int(rng.integers(1, 4 if arm == "t2t" else 8))
        last = n_tok - 1
        for kind in ("mlp", "attn"):
            low = 0.05
            scores = low + rng.normal(0, 0.01, (n_tok, L))
            scores[e - 1, 3:6] += strength
            write_npz_atomic(result_path(run_dir, kind, known_id), {
                "known_id": np.asarray(known_id), "scores": scores, "logprobs": np.log(np.clip(scores, 1e-6, 1)),
                "low_score": np.float64(low), "high_score": np.float64(0.6), "low_logprob": np.float64(np.log(low)),
                "high_logprob": np.float64(np.log(0.6)), "subject_range": np.asarray([b, e], dtype=np.int64),
                "last_position": np.int64(last), "positions": np.arange(n_tok)})
    return run_dir


@pytest.fixture
def two_runs(tmp_path):
    t = fake_run(tmp_path / "results", "t2t", range(10, 22), 0, 0.3)
    s = fake_run(tmp_path / "results", "s2t", range(14, 26), 1, 0.05)
    return t, s


def direct_group_curve(run_dir: Path, kind: str, ids, group: str) -> np.ndarray:
    rows = []
    for known_id in ids:
        with np.load(result_path(run_dir, kind, known_id)) as d:
            b, e = d["subject_range"]
            pos = {"last_subject": e - 1, "last": int(d["last_position"])}[group]
            rows.append(d["scores"][pos] - d["low_score"])
    return np.array(rows)


def test_compare_runs_end_to_end(two_runs, tmp_path):
    t, s = two_runs
    out = tmp_path / "cmp"
    doc = compare.compare_runs(t, s, out, kinds=("mlp", "attn"), subsets={"train": [14, 15, 16], "held_out": [20]},
                               n_resamples=B)
    for name in ("comparison.json", "comparison.md", "summary.md"):
        assert (out / name).stat().st_size > 200
    assert not (out / "figures").exists()  # statistics draw no figure: the figures package does, from the document
    from artifact.figures.comparison import plot_comparison

    written = plot_comparison(doc, out, ("both",))
    for stem in ("curves_both_mlp", "heatmaps_both_attn", "normalised_both_mlp", "normalised_both_attn"):
        assert (out / "figures" / f"{stem}.png").is_file() and (out / "figures" / f"{stem}.pdf").is_file()
    assert not (out / "figures" / "curves_own_mlp.png").exists()
    assert len(written) == 2 * 3 * 2  # (curves, heatmaps, normalised) x kinds, PNG + PDF
    stored = json.loads((out / "comparison.json").read_text())
    assert stored["claims"] == doc["claims"]
    assert set(stored["claims_by_set"]) == {"both", "own", "train", "held_out"}
    # the claims section is {claim id: {"verdict": ...}}: what a verifier reads
    assert {c: v["verdict"] in ("supported", "not supported", "inconclusive") for c, v in stored["claims"].items()} \
        == {"C1": True, "C2": True, "C3": True}
    assert claims.evaluate_claims(stored) == stored["claims"]  # re-judged from the stored file alone
    both = [str(i) for i in range(14, 22)]
    assert stored["sets"]["both"]["known_ids"]["mlp"] == both
    assert stored["sets"]["train"]["n_facts"]["mlp"] == {"t2t": 3, "s2t": 3}
    assert stored["sets"]["own"]["n_facts"]["mlp"] == {"t2t": 12, "s2t": 12}
    # numbers equal a direct numpy computation on the shared facts
    r = stored["results"]["both"]["mlp"]
    ct = direct_group_curve(t, "mlp", range(14, 22), "last_subject")
    cs = direct_group_curve(s, "mlp", range(14, 22), "last_subject")
    np.testing.assert_allclose(r["arms"]["t2t"]["groups"]["last_subject"]["aie"], ct.mean(0), atol=1e-12)
    np.testing.assert_allclose(r["arms"]["s2t"]["groups"]["last_subject"]["aie"], cs.mean(0), atol=1e-12)
    np.testing.assert_allclose(r["groups"]["last_subject"]["difference"]["mean"], (cs - ct).mean(0), atol=1e-12)
    assert r["arms"]["t2t"]["groups"]["last_subject"]["peak"]["layer"] == int(ct.mean(0).argmax())
    assert r["groups"]["last_subject"]["peak_ratio"]["value"] == pytest.approx(cs.mean(0).max() / ct.mean(0).max())
    assert r["groups"]["last_subject"]["difference"]["ci_high"][4] < 0  # S->T is weaker at the peak
    # the length-normalised view: the effect sits in the subject's last bin at layers 3-5
    view = np.array(stored["normalised"]["sets"]["both"]["mlp"]["t2t"]["aie"], dtype=float)
    assert view.shape == (normalised.SUBJECT_BINS + normalised.REST_BINS, L)
    assert view[normalised.SUBJECT_BINS - 1, 4] > 0.1 and abs(view[-1, 4]) < 0.05
    direct = []
    for known_id in range(14, 22):
        with np.load(result_path(t, "mlp", known_id)) as d:
            direct.append(normalised.normalise_fact(d["scores"] - d["low_score"], d["subject_range"],
                                                    int(d["last_position"])))
    np.testing.assert_allclose(view, np.mean(direct, axis=0), atol=1e-12)
    md = (out / "comparison.md").read_text()
    assert "| mlp |" in md and "Set `both`" in md
    again = compare.compare_runs(t, s, tmp_path / "again", kinds=("mlp", "attn"), n_resamples=B)
    assert again["results"]["both"] == doc["results"]["both"]  # deterministic


def test_normalised_view_skipped_with_representative_positions(tmp_path):
    t = fake_run(tmp_path / "r", "t2t", range(5), 0, 0.3)
    s = fake_run(tmp_path / "r", "s2t", range(5), 1, 0.05, positions="representatives:2")
    doc = compare.compare_runs(t, s, tmp_path / "out", kinds=("mlp",), n_resamples=200)
    assert "representatives:2" in doc["normalised"]["skipped"]
    assert "Not computed" in (tmp_path / "out" / "comparison.md").read_text()


def test_compare_bad_inputs(two_runs, tmp_path):
    t, s = two_runs
    with pytest.raises(ResultsFolderError, match="not a results folder"):
        compare.compare_runs(tmp_path, s, tmp_path / "o")
    with pytest.raises(ResultsFolderError, match="S->T run"):
        compare.compare_runs(s, t, tmp_path / "o")
    other_t = fake_run(tmp_path / "other", "t2t", range(3), 0, 0.3)
    with pytest.raises(ResultsFolderError, match="T->T run"):
        compare.compare_runs(t, other_t, tmp_path / "o")  # two T->T runs
    other_facts = fake_run(tmp_path / "fp", "s2t", range(10, 22), 1, 0.05, fingerprint="0" * 64)
    with pytest.raises(ResultsFolderError, match="different fact files"):
        compare.compare_runs(t, other_facts, tmp_path / "o")
    disjoint = fake_run(tmp_path / "dj", "s2t", range(100, 104), 1, 0.05)
    with pytest.raises(ResultsFolderError, match="share no traced facts"):
        compare.compare_runs(t, disjoint, tmp_path / "o", kinds=("mlp",), n_resamples=200)


def test_default_out_dir():
    assert compare.default_out_dir(Path("r/smoke/runs/t2t-a"), Path("r/smoke/runs/s2t-b")) == Path("r/smoke/comparison")
    assert compare.default_out_dir(Path("res/t2t-a"), Path("res/s2t-b")) == Path("res/comparison/t2t-a_vs_s2t-b")


def test_split_from_manifest(tmp_path):
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"facts_fingerprints": {"own": "a" * 64, "known_1000": "b" * 64},
                                "train_facts": ["own:1", "own:2", "known_1000:7"],
                                "held_out_facts": ["own:3", "known_1000:8"]}))
    assert compare.split_from_manifest(path, "a" * 64) == {"train": ["1", "2"], "held_out": ["3"]}
    assert compare.split_from_manifest(path, "b" * 64) == {"train": ["7"], "held_out": ["8"]}
    assert compare.split_from_manifest(path, "c" * 64) == {}


def test_cli_compare(two_runs, tmp_path, capsys):
    from artifact.cli import main

    t, s = two_runs
    out = tmp_path / "cli"
    assert main(["compare", "--t2t", str(t), "--s2t", str(s), "--out", str(out), "--kinds", "mlp",
                 "--resamples", "200", "--no-figures"]) == 0
    printed = capsys.readouterr().out
    assert "C1 (own)" in printed and (out / "summary.md").is_file()
    assert main(["compare", "--t2t", str(s), "--s2t", str(t), "--out", str(out)]) == 2
    assert "S->T run" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore:Mean of empty slice")
def test_entropy_uses_the_same_cells_in_both_arms():
    rng = np.random.default_rng(8)
    t2t, s2t = rng.normal(0.01, 0.005, (20, G, L)), rng.normal(0.01, 0.005, (20, G, L))
    t2t[:, GROUPS.index("middle_subject")] = np.nan  # no text subject has a middle token
    cells = compare.mechanism_cells(np.nanmean(t2t, axis=0), np.nanmean(s2t, axis=0))
    assert not cells[GROUPS.index("middle_subject")].any() and not cells[GROUPS.index("last")].any()
    assert cells[GROUPS.index("further")].all()
    r = compare.compare_arrays(t2t, s2t, paired=True, n_resamples=200)
    expected = compare.normalised_entropy(np.nanmean(s2t, axis=0)[cells])
    assert r["arms"]["s2t"]["entropy"]["value"] == pytest.approx(float(expected))
