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


def test_fixture_sentencepiece_normalises_like_llama(sentencepiece_tokenizer):
    """The test tokenizer's SentencePiece model treats text as Llama 2's does (tests/support/llama_tokenizer.py): a
    dummy '▁' prefix, spaces kept as '▁' (a bare '▁' before a spaced word), text left unnormalised, and characters
    outside its pieces as UTF-8 byte pieces (byte fallback), never <unk>."""
    sp = sentencepiece_tokenizer.sp_model
    assert sp.encode("Paris", out_type=str) == ["▁Paris"]  # dummy prefix
    assert sp.encode(" Paris", out_type=str) == ["▁", "▁Paris"]  # BRIEF section 2's trap
    assert sp.encode("of  Paris", out_type=str) == ["▁of", "▁", "▁Paris"]  # extra whitespace kept
    assert sp.encode("東", out_type=str) == ["▁", "<0xE6>", "<0x9D>", "<0xB1>"]  # byte fallback
    assert sp.encode("ﬁ", out_type=str) == ["▁", "<0xEF>", "<0xAC>", "<0x81>"]  # identity rule: no NFKC to 'fi'
    assert sp.unk_id() not in sp.encode("東ﬁ ü")
    assert sp.decode(sp.encode("Zürich 東京, ﬁne")) == "Zürich 東京, ﬁne"


def test_answer_token_after_an_added_marker_in_legacy_mode(sentencepiece_tokenizer, tmp_path):
    """With the markers as added tokens in legacy mode, prompt + ' Paris' ends in '[Text]', '▁', '▁Paris' (the text
    after an added token gets SentencePiece's dummy '▁'); the answer is the word-start piece '▁Paris', the same
    token as in the other layouts, and digits after the marker are still refused."""
    from transformers import LlamaTokenizer

    from tests.support.spiritlm_checkpoint import write_tokenizer

    write_tokenizer(tmp_path, "added-legacy")
    tok = LlamaTokenizer.from_pretrained(tmp_path, add_bos_token=True, add_eos_token=False)
    prompt = "[Speech][Hu99][Hu49][Text]"
    assert tok.convert_ids_to_tokens(tok(prompt + " Paris")["input_ids"])[-3:] == ["[Text]", "▁", "▁Paris"]
    answer = answer_token_id(tok, prompt, "Paris")
    assert tok.convert_ids_to_tokens(answer) == "▁Paris"
    assert answer == answer_token_id(sentencepiece_tokenizer, prompt, "Paris")  # the pieces layout's answer
    with pytest.raises(ValueError, match="bare space"):
        answer_token_id(tok, prompt, "1889")
