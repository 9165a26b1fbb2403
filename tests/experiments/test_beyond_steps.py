"""Issue 30's steps' orchestration on a tiny seeded Llama: per-fact files written, reused on a rerun, a damaged one
computed again to the same bits, other settings refused; token replacement's partners over the step's facts; the
corruption document's sentence when too few facts were judged. The whole steps on the embedded models (record,
verify, mutate, resume) are in tests/verification/test_mutations.py."""

from __future__ import annotations

import numpy as np
import pytest

from artifact.core.layout import ResultsFolderError, transcription_fact_path
from artifact.models import ModelAdapter
from tests.support.tiny_runs import StandInFact, TinyLoaded, tiny_items


class VocabTokenizer:
    """The tokenizer surface text_mode_banned_ids reads: every row of the tiny model a plain text token, plus two
    speech units ([Hu0], [Hu1]) at ids 95 and 96."""

    def get_vocab(self):
        vocab = {f"t{i}": i for i in range(95)}
        vocab.update({"[Hu0]": 95, "[Hu1]": 96})
        return vocab


def _pairs(model):
    items = tiny_items(model)
    pairs = []
    for (fact, text), (_, speech) in zip(items, items[1:] + items[:1]):
        pairs.append((fact, {"text": text, "speech": speech}))  # any prompt stands in for the spoken one
    return pairs


def test_transcription_step_writes_reuses_and_recomputes_a_damaged_file(tmp_path, llama_tiny):
    from artifact.experiments.transcription import run_transcription
    from artifact.tracing.transcription import transcription_reference

    loaded = TinyLoaded("tiny", llama_tiny, VocabTokenizer(), ModelAdapter(llama_tiny))
    pairs = _pairs(llama_tiny)
    computed, reused = run_transcription(loaded, pairs, {"model": "tiny"}, tmp_path, progress=False)
    assert len(computed) == len(pairs) and not reused
    fact, prompts = pairs[0]
    path = transcription_fact_path(tmp_path, fact.known_id)
    with np.load(path) as data:
        prob, first_last = data["prob"], data["first_prob_last"]
    import torch

    speech = prompts["speech"]
    b, e = speech.subject_range
    text_ids = list(prompts["text"].input_ids[slice(*prompts["text"].subject_range)])
    reference = transcription_reference(llama_tiny, ModelAdapter(llama_tiny), torch.tensor(speech.input_ids),
                                        range(b, e), text_ids, [95, 96])
    np.testing.assert_allclose(prob, reference.prob, atol=1e-5)  # the file holds the lens's numbers
    np.testing.assert_allclose(first_last, reference.first_prob[-1], atol=1e-5)
    before = path.read_bytes()
    computed, reused = run_transcription(loaded, pairs, {"model": "tiny"}, tmp_path, progress=False)
    assert not computed and len(reused) == len(pairs)
    path.write_bytes(before[:100])  # a killed write's remains
    computed, reused = run_transcription(loaded, pairs, {"model": "tiny"}, tmp_path, progress=False)
    assert computed == [str(fact.known_id)] and path.read_bytes() == before
    with pytest.raises(ResultsFolderError, match="other settings \\(model differ\\).*another --out"):
        run_transcription(loaded, pairs, {"model": "other"}, tmp_path, progress=False)


def test_replacement_partners_are_found_among_every_prompt_and_reported_for_the_steps_facts():
    from artifact.experiments.corruption import partners
    from artifact.prompts.build import TracePrompt

    def item(i, subject, answer, relation="P1"):
        ids = (1, *subject, 2, 3)
        return (StandInFact(i, f"s{i}", f"a{i}", f"p{i}", relation),
                TracePrompt(text=f"p{i}", input_ids=ids, subject_range=(1, 1 + len(subject)), target_id=answer,
                            modality="text"))

    items = [item(1, (5, 6), 40), item(2, (7, 8), 41), item(3, (9,), 42), item(4, (10, 11), 40, "P2")]
    found = partners(items, ["1", "3"])  # fact 2 and 4 are partners only, not measured
    assert found == {"partners": {"1": "2"}, "skipped": ["3"], "same_relation": 1}


def test_the_dependence_sentence_names_corruptions_too_small_to_judge():
    from artifact.analysis.corruption_document import MIN_FACTS, NOT_JUDGED, judged_sentence, logit_diff_sentence

    judged = {c: "supported" for c in ("C1", "C2", "C3")}
    unjudged = {c: NOT_JUDGED for c in ("C1", "C2", "C3")}
    entry = lambda n: {"metrics": {"prob": {"n_facts": n}}}  # noqa: E731
    corruptions = {"noise_3": entry(8), "noise_1": entry(8), "replacement": entry(2)}
    sentence = judged_sentence({"noise_3": judged, "noise_1": judged, "replacement": unjudged}, corruptions)
    assert "does not depend" in sentence and "Not judged (too few facts): token replacement (2 facts)" in sentence
    corruptions["noise_3"] = entry(MIN_FACTS - 1)
    sentence = judged_sentence({"noise_3": unjudged, "noise_1": unjudged}, corruptions)
    assert sentence.startswith("Not measured") and "does not depend" not in sentence
    # the logit difference's sentence does not repeat the whole 'not measured' text when the baseline is unjudged
    assert logit_diff_sentence({"noise_3": unjudged, "replacement": unjudged}, corruptions) == (
        "Measured by the logit difference under token replacement: not measured either, for the same reason.")
    corruptions["noise_3"] = entry(8)
    by_diff = logit_diff_sentence({"noise_3": judged, "replacement": {**judged, "C2": "not supported"}}, corruptions)
    assert by_diff.startswith("Measured by the logit difference under token replacement: The conclusion depends")


def test_the_carryover_folder_keeps_its_settings_and_refuses_others(tmp_path):
    """carryover/settings.json is written once (the step's fact files sit in carryover/facts/), read back equal on a
    rerun with the same settings, and a rerun with other settings is refused naming what differs and the fix."""
    import json
    from dataclasses import replace

    from artifact.core.layout import CARRYOVER_DIR, CARRYOVER_FACTS_DIR, SETTINGS_FILE
    from artifact.experiments.carryover import CarryOverSettings, open_carryover_dir
    from artifact.experiments.profiles import PROFILES

    smoke = PROFILES["smoke"]
    settings = CarryOverSettings(models={"text": "t", "speech": "s"}, text_noise=0.1, speech_noise=0.2,
                                 trace=smoke.trace, plan=smoke.carryover)
    folder = open_carryover_dir(tmp_path, settings)
    assert folder == tmp_path / CARRYOVER_DIR and (folder / CARRYOVER_FACTS_DIR).is_dir()
    stored = (folder / SETTINGS_FILE).read_text()
    assert json.loads(stored) == settings.to_dict()
    assert open_carryover_dir(tmp_path, settings) == folder and (folder / SETTINGS_FILE).read_text() == stored
    with pytest.raises(ResultsFolderError, match="holds carry-over results of other settings \\(text_noise differ\\)"
                                                 ".*another --out"):
        open_carryover_dir(tmp_path, replace(settings, text_noise=0.3))


def test_corruption_step_writes_reuses_and_recomputes_a_lost_or_damaged_file(tmp_path, llama_tiny):
    """The corruption choice's (arm, fact) files: written once, reused on a rerun, a lost one and a damaged one
    computed again to the same bits while the others are not rewritten (what a killed step leaves)."""
    from types import SimpleNamespace

    from artifact.core.layout import corruption_fact_path
    from artifact.experiments.corruption import corruption_settings, run_corruption
    from artifact.experiments.profiles import CorruptionPlan
    from tests.support.tiny_runs import tiny_settings

    loaded = TinyLoaded("tiny", llama_tiny, VocabTokenizer(), ModelAdapter(llama_tiny))
    items = tiny_items(llama_tiny)
    prepared = {arm: SimpleNamespace(items=items, settings=tiny_settings(arm=arm, samples=2), loaded=loaded)
                for arm in ("t2t", "s2t")}
    settings = corruption_settings(prepared, CorruptionPlan(multiples=(3.0, 5.0)), ["mlp"])
    ids = [str(f.known_id) for f, _ in items[:2]]
    computed, reused, _ = run_corruption(prepared, ids, settings, tmp_path, progress=False)
    assert len(computed) == 4 and not reused
    files = [corruption_fact_path(tmp_path, arm, i) for arm in ("t2t", "s2t") for i in ids]
    before = {p: p.read_bytes() for p in files}
    computed, reused, _ = run_corruption(prepared, ids, settings, tmp_path, progress=False)
    assert not computed and len(reused) == 4
    lost, damaged = files[0], files[3]
    lost.unlink()
    damaged.write_bytes(before[damaged][:100])  # a killed write's remains
    kept = {p: p.stat().st_mtime_ns for p in files if p not in (lost, damaged)}
    computed, reused, _ = run_corruption(prepared, ids, settings, tmp_path, progress=False)
    assert sorted(computed) == sorted([f"t2t/{ids[0]}", f"s2t/{ids[1]}"]) and len(reused) == 2
    assert {p: p.read_bytes() for p in files} == before
    assert {p: p.stat().st_mtime_ns for p in kept} == kept
