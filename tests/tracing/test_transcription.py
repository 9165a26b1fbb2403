"""Implicit-transcription lens on tiny seeded Llama and GPT-2 models: the one-forward implementation equals the plain
per-layer oracle (`output_hidden_states`, final norm and LM head by hand) to 1e-5, and its read-out is the text-mode
distribution: banned tokens get no mass and no rank, computed here independently from the model's own logits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from artifact.models.adapters import ModelAdapter
from artifact.tracing.transcription import transcription_lens, transcription_reference

PROMPT = torch.tensor([5, 17, 42, 8, 91, 23, 60, 12, 3])  # a "speech" prompt: subject units at 2..5
SPAN = (2, 3, 4)
BANNED = [0, 1, 13, *range(50, 70)]  # stand-ins for markers and speech units
SUBJECT_IDS = [11, 30, 7]


@pytest.fixture(params=["llama", "gpt2"])
def model(request, llama_tiny, gpt2_tiny):
    return {"llama": llama_tiny, "gpt2": gpt2_tiny}[request.param]


def test_one_forward_equals_the_per_layer_oracle(model):
    adapter = ModelAdapter(model)
    fast = transcription_lens(model, adapter, PROMPT, SPAN, SUBJECT_IDS, BANNED)
    slow = transcription_reference(model, adapter, PROMPT, SPAN, SUBJECT_IDS, BANNED)
    assert fast.prob.shape == (3, adapter.num_layers, 3) == fast.rank.shape
    np.testing.assert_allclose(fast.prob, slow.prob, atol=1e-5, rtol=0)
    np.testing.assert_array_equal(fast.rank, slow.rank)
    assert fast.positions == SPAN and fast.subject_ids == tuple(SUBJECT_IDS)
    # not vacuous: the numbers move across layers, positions and tokens
    assert np.ptp(fast.prob) > 1e-3 and len(np.unique(fast.rank)) > 3


def test_the_read_out_is_the_text_mode_distribution(model):
    """At the last layer the lens is the model's own next-token distribution restricted to the allowed tokens."""
    adapter = ModelAdapter(model)
    with torch.no_grad():
        logits = model(input_ids=PROMPT[None]).logits[0].double().numpy()  # [pos, vocab]
    allowed = np.setdiff1d(np.arange(logits.shape[1]), BANNED)
    result = transcription_lens(model, adapter, PROMPT, SPAN, SUBJECT_IDS, BANNED)
    for i, position in enumerate(SPAN):
        row = logits[position]
        expected = np.exp(row[SUBJECT_IDS]) / np.exp(row[allowed]).sum()
        np.testing.assert_allclose(result.prob[i, -1], expected, atol=1e-6, rtol=0)
        order = allowed[np.argsort(-row[allowed], kind="stable")]
        np.testing.assert_array_equal(result.rank[i, -1], [int(np.flatnonzero(order == t)[0]) for t in SUBJECT_IDS])
    # the text-mode argmax has rank 0 and the largest P
    top = int(allowed[np.argmax(logits[SPAN[-1]][allowed])])
    at_top = transcription_lens(model, adapter, PROMPT, [SPAN[-1]], [top], BANNED)
    assert at_top.rank[0, -1, 0] == 0


def test_without_banned_tokens_it_is_the_whole_softmax(model):
    adapter = ModelAdapter(model)
    with torch.no_grad():
        probs = torch.softmax(model(input_ids=PROMPT[None]).logits[0].float(), dim=-1)
    result = transcription_lens(model, adapter, PROMPT, SPAN, SUBJECT_IDS)
    np.testing.assert_allclose(result.prob[:, -1], probs[list(SPAN)][:, SUBJECT_IDS].numpy(), atol=1e-6, rtol=0)
    text_mode = transcription_lens(model, adapter, PROMPT, SPAN, SUBJECT_IDS, BANNED)
    assert (result.prob[:, -1] < text_mode.prob[:, -1]).all()  # banning tokens moves their mass to the others


def test_first_best_and_summary(llama_tiny):
    adapter = ModelAdapter(llama_tiny)
    result = transcription_lens(llama_tiny, adapter, PROMPT, (4, 2, 3), SUBJECT_IDS, BANNED)
    assert result.positions == (2, 3, 4)  # sorted: the last read position is the last subject token
    np.testing.assert_array_equal(result.first_rank, result.rank[:, :, 0])
    np.testing.assert_array_equal(result.best_rank, result.rank.min(axis=2))
    np.testing.assert_array_equal(result.best_prob, result.prob.max(axis=2))
    summary = result.summary()
    assert sorted(summary) == sorted(f"{t}_{m}_{w}" for t in ("first", "best") for m in ("prob", "rank")
                                     for w in ("last", "any"))
    assert all(v.shape == (adapter.num_layers,) for v in summary.values())
    np.testing.assert_array_equal(summary["first_rank_last"], result.rank[2, :, 0])
    np.testing.assert_array_equal(summary["best_rank_any"], result.rank.min(axis=(0, 2)))
    np.testing.assert_array_equal(summary["best_prob_any"], result.prob.max(axis=(0, 2)))
    assert (summary["best_rank_last"] <= summary["first_rank_last"]).all()


def test_bad_inputs_say_what_is_wrong(llama_tiny):
    adapter = ModelAdapter(llama_tiny)
    with pytest.raises(ValueError, match="positions must be distinct positions"):
        transcription_lens(llama_tiny, adapter, PROMPT, [2, 40], SUBJECT_IDS)
    with pytest.raises(ValueError, match="positions must be distinct positions"):
        transcription_lens(llama_tiny, adapter, PROMPT, [], SUBJECT_IDS)
    with pytest.raises(ValueError, match="subject_ids must be"):
        transcription_lens(llama_tiny, adapter, PROMPT, SPAN, [500])
    with pytest.raises(ValueError, match="banned from text mode"):
        transcription_lens(llama_tiny, adapter, PROMPT, SPAN, [11, 55], BANNED)


@pytest.mark.slow
def test_on_the_embedded_speech_model_with_a_spoken_prompt():
    """The real path: the embedded speech-text model (SmolLM2 + SpiritLM's vocabulary), a prompt spoken by the offline
    front end (espeak-ng), the subject's text tokens from its T->T prompt, SpiritLM's text-mode bans. The one-forward
    lens equals the oracle (P to 1e-5; ranks exactly where they matter, off by at most 2 among float near-ties of
    tokens ranked in the hundreds), and no marker or unit token is ever counted in a rank."""
    from artifact.known import text_mode_banned_ids
    from artifact.models import load_model
    from artifact.prompts import speech_prompt, text_prompt
    from artifact.speech.front_end import FrontEndConfig, SpeechFrontEnd

    loaded = load_model("embedded-speech", device="cpu")
    prompt, subject = "The Eiffel Tower is located in the city of", "Eiffel Tower"
    spoken = SpeechFrontEnd(FrontEndConfig.offline("embedded")).process(prompt, subject)
    speech = speech_prompt(loaded.tokenizer, spoken.units, spoken.subject_tokens, "Paris")
    text = text_prompt(loaded.tokenizer, prompt, subject, "Paris", loaded.prompt_format)
    subject_ids = text.input_ids[text.subject_range[0]:text.subject_range[1]]
    banned = text_mode_banned_ids(loaded.tokenizer)
    assert len(banned) == 503  # [Text], [Speech], [Hu0]..[Hu500]
    b, e = speech.subject_range
    positions = sorted({b, (b + e) // 2, e - 1})
    ids = torch.tensor(speech.input_ids)
    fast = transcription_lens(loaded.model, loaded.adapter, ids, positions, subject_ids, banned)
    slow = transcription_reference(loaded.model, loaded.adapter, ids, positions, subject_ids, banned)
    np.testing.assert_allclose(fast.prob, slow.prob, atol=1e-5, rtol=0)
    top = np.minimum(fast.rank, slow.rank) < 100
    np.testing.assert_array_equal(fast.rank[top], slow.rank[top])
    assert np.abs(fast.rank - slow.rank).max() <= 2
    counted = transcription_lens(loaded.model, loaded.adapter, ids, positions, subject_ids)  # units counted too
    assert (counted.rank >= fast.rank).all() and (counted.rank > fast.rank).any()
