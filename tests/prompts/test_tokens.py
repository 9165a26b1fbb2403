"""Subject location and answer tokens on SentencePiece (slow LlamaTokenizer) and byte-level BPE tokenizers."""

from __future__ import annotations

import pytest

from artifact.prompts import SubjectLocationError, answer_token_id, find_subject_range

CASES = [
    ("The Eiffel Tower is located in the city of", "Eiffel Tower"),
    ("Vinson Massif is located in the continent of", "Vinson Massif"),  # subject at the start
    ("[Text]Vinson Massif is located in the continent of", "Vinson Massif"),  # after a modality marker
    ("Knud, Hereditary Prince of Denmark, is a citizen of", "Knud, Hereditary Prince of Denmark"),  # punctuation
    ("The mother tongue of Danielle Darrieux is", "Danielle Darrieux"),
    ("Michael Jordan professionally plays the sport of", "Jordan"),  # one word inside
    ("The official language of Brazil", "Brazil"),  # subject at the end
]


def _check_range(tokenizer, prompt, subject):
    ids = tokenizer(prompt)["input_ids"]
    b, e = find_subject_range(tokenizer, prompt, subject)
    assert 0 <= b < e <= len(ids)
    decoded = tokenizer.decode(ids[b:e]).strip()
    assert decoded == subject, (decoded, subject)
    # the tokens just outside the range are not part of the subject
    if b > 0:
        assert subject not in tokenizer.decode(ids[b - 1 : e - 1]).strip() or e - b > 1
    return b, e


@pytest.mark.parametrize("prompt, subject", CASES)
def test_sentencepiece_subject_range(sentencepiece_tokenizer, prompt, subject):
    b, _ = _check_range(sentencepiece_tokenizer, prompt, subject)
    if prompt.startswith(subject):
        assert b == 1  # right after BOS
    if prompt.startswith("[Text]"):
        ids = sentencepiece_tokenizer(prompt)["input_ids"]
        assert ids[b - 1] == sentencepiece_tokenizer.convert_tokens_to_ids("[Text]")  # subject right after marker


@pytest.mark.parametrize("prompt, subject", [c for c in CASES if not c[0].startswith("[Text]")])
def test_bpe_subject_range(embedded, prompt, subject):
    b, _ = _check_range(embedded.tokenizer, prompt, subject)
    if prompt.startswith(subject):
        assert b == 0  # the embedded tokenizer adds no BOS


def test_second_occurrence(sentencepiece_tokenizer):
    prompt = "Paris is the capital of France, and Paris is"
    first = find_subject_range(sentencepiece_tokenizer, prompt, "Paris")
    second = find_subject_range(sentencepiece_tokenizer, prompt, "Paris", occurrence=1)
    assert second[0] > first[1]


def test_absent_and_empty_subjects_are_clear_errors(sentencepiece_tokenizer):
    with pytest.raises(SubjectLocationError, match="does not occur"):
        find_subject_range(sentencepiece_tokenizer, "The Eiffel Tower is in", "Louvre")
    with pytest.raises(SubjectLocationError, match="prompt is empty"):
        find_subject_range(sentencepiece_tokenizer, "", "Louvre")
    with pytest.raises(SubjectLocationError, match="subject is empty"):
        find_subject_range(sentencepiece_tokenizer, "The Eiffel Tower", " ")


def test_subject_straddling_a_token_is_ambiguous(embedded):
    # "Eiff" ends inside a token of "Eiffel" for the BPE tokenizer
    with pytest.raises(SubjectLocationError, match="straddles"):
        find_subject_range(embedded.tokenizer, "The Eiffel Tower is located in", "Eiff")


def test_answer_token_sentencepiece_avoids_bare_space(sentencepiece_tokenizer):
    tok = sentencepiece_tokenizer
    prompt = "The Eiffel Tower is located in the city of"
    answer = answer_token_id(tok, prompt, "Paris")
    assert tok.convert_ids_to_tokens(answer).startswith("▁P")  # never a bare '▁'
    prompt_ids = tok(prompt)["input_ids"]
    assert tok(prompt + " Paris")["input_ids"][: len(prompt_ids) + 1] == prompt_ids + [answer]


def test_answer_token_bpe(embedded):
    tok = embedded.tokenizer
    answer = answer_token_id(tok, "The Eiffel Tower is located in the city of", "Paris")
    assert tok.decode([answer]) == " Paris"
    with pytest.raises(ValueError, match="attribute is empty"):
        answer_token_id(tok, "The Eiffel Tower is located in the city of", "")


def test_answer_token_that_is_a_bare_space_is_refused(sentencepiece_tokenizer):
    """Llama's SentencePiece splits digits: ' 1990' continues a prompt as '▁', '1', '9', ... The first token is the
    bare '▁'; scoring it would measure P(space), so the fact cannot be scored by its answer token."""
    tok = sentencepiece_tokenizer
    prompt = "The Eiffel Tower was completed in"
    assert tok.convert_ids_to_tokens(tok(prompt + " 1889")["input_ids"])[len(tok(prompt)["input_ids"])] == "▁"
    with pytest.raises(ValueError, match="bare space"):
        answer_token_id(tok, prompt, "1889")
