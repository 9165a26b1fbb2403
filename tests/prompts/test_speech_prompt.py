"""S->T SpiritLM prompt on final token ids, with a SentencePiece tokenizer that has SpiritLM's exact special-token
ids: [Text] = 32000, [Speech] = 32001, [Hu0]..[Hu500] = 32002..32502."""

from __future__ import annotations

import pytest

from artifact.prompts import speech_prompt
from artifact.speech import SpeechUnits


@pytest.fixture(scope="module")
def spiritlm_layout_tokenizer(sentencepiece_tokenizer):
    """SpiritLM's tokenizer layout (tests/support/llama_tokenizer.py, shared with conftest)."""
    return sentencepiece_tokenizer


def test_tokenizer_has_spiritlm_ids(spiritlm_layout_tokenizer):
    tok = spiritlm_layout_tokenizer
    assert tok.convert_tokens_to_ids(["[Text]", "[Speech]", "[Hu0]", "[Hu99]", "[Hu500]"]) == [
        32000, 32001, 32002, 32101, 32502]
    assert len(tok) == 32503


def test_speech_prompt_ids_and_subject_range(spiritlm_layout_tokenizer):
    tok = spiritlm_layout_tokenizer
    units = SpeechUnits.from_frames([99, 99, 49, 38, 38, 38, 7, 499, 0, 0])  # tokens 99 49 38 7 499 0
    subject = units.tokens_overlapping(0.08, 0.28)  # frames 2..6 -> tokens 1..3
    assert subject == (1, 4)
    prompt = speech_prompt(tok, units, subject, "Antarctica")
    assert prompt.text == "[Speech][Hu99][Hu49][Hu38][Hu7][Hu499][Hu0][Text]"
    assert prompt.modality == "speech"
    ids = list(prompt.input_ids)
    assert ids[0] == tok.bos_token_id == 1
    speech_at = ids.index(32001)
    expected = [32001, 32002 + 99, 32002 + 49, 32002 + 38, 32002 + 7, 32002 + 499, 32002 + 0, 32000]
    assert ids[speech_at:] == expected
    assert all(i == tok.convert_tokens_to_ids("▁") for i in ids[1:speech_at])  # at most SentencePiece's dummy prefix
    b, e = prompt.subject_range
    assert ids[b:e] == [32002 + 49, 32002 + 38, 32002 + 7]
    assert prompt.last_position == len(ids) - 1 and ids[prompt.last_position] == 32000
    full = tok(prompt.text + " Antarctica")["input_ids"]
    assert full[: len(ids)] == ids and full[len(ids)] == prompt.target_id
    answer = tok.convert_ids_to_tokens(prompt.target_id)
    assert answer.startswith("▁") and len(answer) > 1 and "Antarctica".startswith(answer[1:])  # not a bare '▁'


def test_speech_prompt_with_the_blank_unit(spiritlm_layout_tokenizer):
    """[Hu500] (the quantizer's CTC blank, left where a whole chunk is blank) is a token of SpiritLM's vocabulary."""
    units = SpeechUnits.from_frames([500, 500, 3, 4])
    prompt = speech_prompt(spiritlm_layout_tokenizer, units, (0, 2), "Paris")
    assert prompt.input_ids[-4:] == (32502, 32005, 32006, 32000)
    assert prompt.input_ids[prompt.subject_range[0]] == 32502


def test_speech_prompt_rejects_bad_input(spiritlm_layout_tokenizer, tmp_path):
    from transformers import LlamaTokenizer

    from tests.support.llama_tokenizer import default_corpus, train_llama_sentencepiece

    units = SpeechUnits.from_frames([1, 2, 3])
    with pytest.raises(ValueError, match="outside"):
        speech_prompt(spiritlm_layout_tokenizer, units, (2, 5), "Paris")
    markers_only = LlamaTokenizer(str(train_llama_sentencepiece(tmp_path, default_corpus(),
                                                                  extra_pieces=("[Text]", "[Speech]"))))
    with pytest.raises(ValueError, match=r"\[Hu"):
        speech_prompt(markers_only, units, (0, 1), "Paris")  # has [Text]/[Speech] but no units
