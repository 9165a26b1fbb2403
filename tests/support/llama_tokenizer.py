"""A SentencePiece model built like Llama 2's, small enough to train in a test, with SpiritLM's vocabulary layout.

Llama's `tokenizer.model` is a BPE model with byte fallback whose normaliser leaves text alone: rule `identity`, extra
whitespace kept, a dummy `▁` prefix added, digits split. That matters: SentencePiece's default normaliser (nmt_nfkc,
extra whitespace removed) turns `' Paris'` into `['▁P', 'aris']`-like pieces and hides the bare `'▁'` that a real
Llama tokenizer produces in front of a space. SpiritLM base extends the 32000 pieces with `[Text]`, `[Speech]` and
`[Hu0]`..`[Hu500]` at ids 32000..32502; here they are user-defined pieces of the model itself, after padding the
trained pieces with unused ones up to 32000.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

LLAMA_BASE_PIECES = 32000
SPIRITLM_MARKERS: tuple[str, ...] = ("[Text]", "[Speech]", *(f"[Hu{i}]" for i in range(501)))


def train_llama_sentencepiece(
    folder: Path, corpus: Iterable[str], trained_pieces: int = 1000,
    extra_pieces: Sequence[str] = SPIRITLM_MARKERS, pad_to: int = LLAMA_BASE_PIECES,
) -> Path:
    """Train a Llama-style SentencePiece BPE model on `corpus` lines into `folder`/tokenizer.model.

    Ids 0, 1, 2 are `<unk>`, `<s>`, `</s>`, then 256 byte pieces and up to `trained_pieces` merges; unused pieces pad
    the model to `pad_to` pieces, then `extra_pieces` follow as user-defined pieces (SpiritLM's markers by default,
    at 32000..32502). Deterministic for the same corpus (one training thread)."""
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2 as model_pb2

    folder.mkdir(parents=True, exist_ok=True)
    text = folder / "corpus.txt"
    text.write_text("\n".join(corpus) + "\n", encoding="utf-8")
    spm.SentencePieceTrainer.train(
        input=str(text), model_prefix=str(folder / "base"), vocab_size=trained_pieces, hard_vocab_limit=False,
        model_type="bpe", byte_fallback=True, normalization_rule_name="identity", remove_extra_whitespaces=False,
        add_dummy_prefix=True, split_digits=True, allow_whitespace_only_pieces=True, character_coverage=1.0,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, num_threads=1, minloglevel=2,
    )
    proto = model_pb2.ModelProto()
    proto.ParseFromString((folder / "base.model").read_bytes())
    kind = model_pb2.ModelProto.SentencePiece
    if len(proto.pieces) > pad_to:
        raise ValueError(f"{len(proto.pieces)} trained pieces exceed pad_to={pad_to}")
    while len(proto.pieces) < pad_to:
        piece = proto.pieces.add()
        piece.piece, piece.score, piece.type = f"<unused{len(proto.pieces)}>", 0.0, kind.UNUSED
    for name in extra_pieces:
        piece = proto.pieces.add()
        piece.piece, piece.score, piece.type = name, 0.0, kind.USER_DEFINED
    path = folder / "tokenizer.model"
    path.write_bytes(proto.SerializeToString())
    for name in ("base.model", "base.vocab", "corpus.txt"):
        (folder / name).unlink()
    return path


# Sentences the tests' prompts come from (ROME's examples), beside the project's own facts.
EXAMPLE_SENTENCES: tuple[str, ...] = (
    "The Eiffel Tower is located in the city of Paris.",
    "Vinson Massif is located in the continent of Antarctica.",
    "Knud, Hereditary Prince of Denmark, is a citizen of Denmark.",
    "Apple A5 was created by Apple.",
    "The mother tongue of Danielle Darrieux is French.",
    "Toko Yasuda produces the most amazing music on the guitar.",
    "Autonomous University of Madrid, which is located in Spain.",
    "The headquarter of Google is located in the city of Mountain View.",
    "Michael Jordan professionally plays the sport of basketball.",
    "The official language of Brazil is Portuguese.",
)


def default_corpus() -> list[str]:
    """Sentences to train on: ROME's examples and every fact of the project's own set (prompt + ' ' + attribute)."""
    from artifact.facts import load_facts

    return [*EXAMPLE_SENTENCES, *(f"{fact.prompt} {fact.attribute}." for fact in load_facts("own"))]
