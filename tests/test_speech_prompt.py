"""S->T SpiritLM prompt on final token ids, with a SentencePiece tokenizer that has SpiritLM's exact special-token
ids: [Text] = 32000, [Speech] = 32001, [Hu0]..[Hu500] = 32002..32502."""

from __future__ import annotations

import pytest

from artifact.speech import SpeechUnits, speech_prompt
from tests.conftest import SP_CORPUS


@pytest.fixture(scope="module")
def spiritlm_layout_tokenizer(tmp_path_factory):
    """A small trained SentencePiece BPE model padded with unused pieces to 32000, then SpiritLM's markers and units
    appended as user-defined pieces, loaded as the slow LlamaTokenizer SpiritLM uses."""
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2 as model_pb2
    from transformers import LlamaTokenizer

    folder = tmp_path_factory.mktemp("spiritlm-sp")
    corpus = folder / "corpus.txt"
    corpus.write_text("\n".join(SP_CORPUS) + "\n")
    spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(folder / "base"), vocab_size=400,
                                   model_type="bpe", byte_fallback=True, minloglevel=2)
    proto = model_pb2.ModelProto()
    proto.ParseFromString((folder / "base.model").read_bytes())
    piece_type = model_pb2.ModelProto.SentencePiece
    while len(proto.pieces) < 32000:
        piece = proto.pieces.add()
        piece.piece, piece.score, piece.type = f"<unused{len(proto.pieces)}>", 0.0, piece_type.UNUSED
    for name in ["[Text]", "[Speech]"] + [f"[Hu{i}]" for i in range(501)]:
        piece = proto.pieces.add()
        piece.piece, piece.score, piece.type = name, 0.0, piece_type.USER_DEFINED
    (folder / "tokenizer.model").write_bytes(proto.SerializeToString())
    return LlamaTokenizer(str(folder / "tokenizer.model"), add_bos_token=True, add_eos_token=False, legacy=True)


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


def test_speech_prompt_rejects_bad_input(spiritlm_layout_tokenizer, sentencepiece_tokenizer):
    units = SpeechUnits.from_frames([1, 2, 3])
    with pytest.raises(ValueError, match="outside"):
        speech_prompt(spiritlm_layout_tokenizer, units, (2, 5), "Paris")
    with pytest.raises(ValueError, match=r"\[Hu"):
        speech_prompt(sentencepiece_tokenizer, units, (0, 1), "Paris")  # has [Text]/[Speech] but no units
