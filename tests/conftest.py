"""Shared fixtures: tiny seeded models of each supported family, a Llama-style SentencePiece tokenizer with
SpiritLM's vocabulary, the real embedded SmolLM2, and the shared data folder (tests needing it are skipped with a
reason when it is absent)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from artifact.experiments.runner import open_run_dir, run_items
from artifact.models import ModelAdapter
from tests.support.tiny_runs import IdTokenizer, TinyLoaded, tiny_items, tiny_settings

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

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
    """SpiritLM's tokenizer as its own code loads it (slow LlamaTokenizer, BOS on, EOS off) on a SentencePiece model
    built like Llama 2's (identity normaliser, dummy prefix, byte fallback) with SpiritLM's markers and units at
    32000..32502 (tests/support/llama_tokenizer.py)."""
    from transformers import LlamaTokenizer

    from tests.support.llama_tokenizer import default_corpus, train_llama_sentencepiece

    path = train_llama_sentencepiece(tmp_path_factory.mktemp("sp"), default_corpus())
    return LlamaTokenizer(str(path), add_bos_token=True, add_eos_token=False)


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


@pytest.fixture(scope="module")
def tiny_run_once(tmp_path_factory, llama_tiny):
    loaded = TinyLoaded("tiny", llama_tiny, IdTokenizer(), ModelAdapter(llama_tiny))
    run_dir = open_run_dir(tmp_path_factory.mktemp("run") / "results", tiny_settings())
    items = tiny_items(llama_tiny)
    summary = run_items(loaded, items, tiny_settings(), run_dir, ("hidden", "mlp", "attn", "severed"), progress=False)
    return loaded, items, run_dir, summary


@pytest.fixture
def tiny_run(tiny_run_once, tmp_path):
    """A private copy of the module's tiny run (tests may change it)."""
    import shutil

    loaded, items, run_dir, summary = tiny_run_once
    copy = tmp_path / "results" / run_dir.name
    shutil.copytree(run_dir, copy)
    return loaded, items, copy, summary
