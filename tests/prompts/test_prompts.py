"""SpiritLM prompt strings and T->T prompts."""

from __future__ import annotations

import pytest

from artifact.core.speechtext import PLAIN, SPIRITLM_FORMAT
from artifact.prompts.build import build_spiritlm_prompt, text_prompt


def test_spiritlm_prompt_strings():
    assert build_spiritlm_prompt([("text", "Vinson Massif is located in the continent of")]) == (
        "[Text]Vinson Massif is located in the continent of"
    )
    assert build_spiritlm_prompt([("speech", "[Hu99][Hu49][Hu38]")]) == "[Speech][Hu99][Hu49][Hu38][Text]"
    assert build_spiritlm_prompt([("speech", "[Hu1]"), ("speech", "[Hu2]")], "speech") == "[Speech][Hu1][Hu2]"
    assert build_spiritlm_prompt([("text", "a"), ("speech", "[Hu2]"), ("text", "b")]) == "[Text]a[Speech][Hu2][Text]b"
    with pytest.raises(ValueError, match="modality"):
        build_spiritlm_prompt([("video", "x")])


def test_text_prompt_spiritlm_marker_shifts_subject(sentencepiece_tokenizer):
    tok = sentencepiece_tokenizer
    plain = text_prompt(tok, "Vinson Massif is located in the continent of", "Vinson Massif", "Antarctica", PLAIN)
    marked = text_prompt(tok, "Vinson Massif is located in the continent of", "Vinson Massif", "Antarctica", SPIRITLM_FORMAT)
    assert marked.text.startswith("[Text]")
    assert tok.convert_tokens_to_ids("[Text]") in marked.input_ids[: marked.subject_range[0]]
    assert marked.subject_range[0] > plain.subject_range[0]
    assert marked.subject_range[1] - marked.subject_range[0] == plain.subject_range[1] - plain.subject_range[0]
    assert marked.target_id == plain.target_id
    assert marked.last_position == len(marked.input_ids) - 1
