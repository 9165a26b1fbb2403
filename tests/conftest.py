"""Shared fixtures: tiny seeded models of each supported family, a trained SentencePiece tokenizer, the real
embedded SmolLM2, and the shared data folder (tests needing it are skipped with a reason when it is absent)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

# Sentences for training a small SentencePiece model in tests (Llama-style BPE with byte fallback).
SP_CORPUS = [
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
] * 20


def tiny_llama(model_type: str = "llama", seed: int = 0) -> torch.nn.Module:
    """A seeded 4-layer Llama-family model (llama, mistral or qwen2), fp32, eval mode."""
    import transformers

    config_cls = {
        "llama": transformers.LlamaConfig,
        "mistral": transformers.MistralConfig,
        "qwen2": transformers.Qwen2Config,
    }[model_type]
    model_cls = {
        "llama": transformers.LlamaForCausalLM,
        "mistral": transformers.MistralForCausalLM,
        "qwen2": transformers.Qwen2ForCausalLM,
    }[model_type]
    config = config_cls(
        vocab_size=97,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        initializer_range=0.3,
    )
    torch.manual_seed(seed)
    return model_cls(config).eval()


def tiny_gpt2(seed: int = 0) -> torch.nn.Module:
    """A seeded 4-layer GPT-2 model, fp32, eval mode."""
    import transformers

    config = transformers.GPT2Config(vocab_size=97, n_embd=32, n_layer=4, n_head=4, n_positions=64, initializer_range=0.3)
    torch.manual_seed(seed)
    return transformers.GPT2LMHeadModel(config).eval()


@pytest.fixture(scope="session")
def llama_tiny() -> torch.nn.Module:
    return tiny_llama()


@pytest.fixture(scope="session")
def gpt2_tiny() -> torch.nn.Module:
    return tiny_gpt2()


@pytest.fixture(scope="session")
def sentencepiece_tokenizer(tmp_path_factory):
    """A slow LlamaTokenizer on a SentencePiece BPE model trained here, with SpiritLM's settings and markers."""
    import sentencepiece as spm
    from transformers import LlamaTokenizer

    folder = tmp_path_factory.mktemp("sp")
    corpus = folder / "corpus.txt"
    corpus.write_text("\n".join(SP_CORPUS) + "\n")
    spm.SentencePieceTrainer.train(
        input=str(corpus),
        model_prefix=str(folder / "tokenizer"),
        vocab_size=500,
        model_type="bpe",
        byte_fallback=True,
        user_defined_symbols=["[Text]", "[Speech]"],
        minloglevel=2,
    )
    return LlamaTokenizer(str(folder / "tokenizer.model"), add_bos_token=True, add_eos_token=False, legacy=True)


@pytest.fixture(scope="session")
def embedded():
    """The real embedded SmolLM2-135M (dequantised once into the project cache)."""
    from artifact.models import load_model

    return load_model("embedded", device="cpu")


@pytest.fixture(scope="session")
def known_1000_path() -> Path:
    path = SHARED_DATA / "known_1000.json"
    if not path.is_file():
        pytest.skip(f"shared data not present ({path}); these tests need ROME's known_1000.json beside the repo")
    return path
