"""Loading a local folder in SpiritLM's exact checkpoint layout (single pytorch_model.bin, SentencePiece
tokenizer.model, BOS on, EOS off), built here with a tiny Llama and a SentencePiece model trained in the test."""

from __future__ import annotations

import shutil

import pytest
import torch

from artifact.models import ModelLoadError, load_model
from artifact.models.loading import SPIRITLM_BASE_SUBDIR, SPIRITLM_MODEL_FILES
from artifact.tracing import TraceConfig, trace_fact
from tests.conftest import SP_CORPUS

UNITS = [f"[Hu{i}]" for i in range(501)]


@pytest.fixture(scope="module")
def spiritlm_root(tmp_path_factory):
    """A checkpoints root holding spiritlm_model/spirit-lm-base-7b with SpiritLM's files and token kinds."""
    import sentencepiece as spm
    import transformers

    root = tmp_path_factory.mktemp("checkpoints")
    folder = root / SPIRITLM_BASE_SUBDIR
    folder.mkdir(parents=True)
    corpus = root / "corpus.txt"
    corpus.write_text("\n".join(SP_CORPUS) + "\n")
    spm.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(root / "sp"), vocab_size=1000, model_type="bpe", byte_fallback=True,
        user_defined_symbols=["[Text]", "[Speech]", *UNITS], minloglevel=2,
    )
    tokenizer = transformers.LlamaTokenizer(str(root / "sp.model"), add_bos_token=True, add_eos_token=False,
                                            legacy=True)
    tokenizer.save_pretrained(folder)
    config = transformers.LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                      num_hidden_layers=3, num_attention_heads=4, max_position_embeddings=128,
                                      initializer_range=0.3)
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config)
    model.save_pretrained(folder, safe_serialization=False)
    return root


def test_fixture_has_spiritlm_layout(spiritlm_root):
    folder = spiritlm_root / SPIRITLM_BASE_SUBDIR
    for name in SPIRITLM_MODEL_FILES:
        assert (folder / name).is_file(), name
    assert not list(folder.glob("*.safetensors"))


def test_loads_with_spiritlm_tokenizer_settings(spiritlm_root, monkeypatch):
    from transformers import LlamaTokenizer

    monkeypatch.setenv("SPIRITLM_CHECKPOINTS_DIR", str(spiritlm_root))
    loaded = load_model("spiritlm", device="cpu")
    assert loaded.is_spiritlm
    assert isinstance(loaded.tokenizer, LlamaTokenizer)  # the slow tokenizer, as SpiritLM's own code
    assert loaded.dtype == torch.float32  # CPU default
    prompt = "[Speech][Hu99][Hu49][Hu38][Text]"
    reference = LlamaTokenizer.from_pretrained(spiritlm_root / SPIRITLM_BASE_SUBDIR, add_bos_token=True,
                                               add_eos_token=False)
    ids = loaded.tokenizer(prompt)["input_ids"]
    assert ids == reference(prompt)["input_ids"]
    assert ids[0] == reference.bos_token_id and ids[-1] != reference.eos_token_id
    for unit in ("[Hu99]", "[Hu49]", "[Hu38]", "[Speech]", "[Text]"):
        assert reference.convert_tokens_to_ids(unit) in ids


def test_bf16_folder_traces_with_fp32_softmax(spiritlm_root):
    loaded = load_model(str(spiritlm_root / SPIRITLM_BASE_SUBDIR), dtype=torch.bfloat16, device="cpu")
    assert loaded.dtype == torch.bfloat16
    ids = torch.tensor(loaded.tokenizer("[Text]The Eiffel Tower is located in the city of")["input_ids"])
    result = trace_fact(loaded.model, ids, (2, 5), 7, TraceConfig(samples=2, noise=0.5, positions=(4,)))
    assert result.scores.dtype.name == "float64" and not torch.isnan(torch.tensor(result.scores[4])).any()


def test_incomplete_layout_names_missing_files(spiritlm_root, tmp_path, monkeypatch):
    broken = tmp_path / SPIRITLM_BASE_SUBDIR
    shutil.copytree(spiritlm_root / SPIRITLM_BASE_SUBDIR, broken)
    (broken / "pytorch_model.bin").unlink()
    (broken / "generation_config.json").unlink()
    monkeypatch.setenv("SPIRITLM_CHECKPOINTS_DIR", str(tmp_path))
    with pytest.raises(ModelLoadError, match="missing: generation_config.json, pytorch_model.bin"):
        load_model("spiritlm")
    monkeypatch.delenv("SPIRITLM_CHECKPOINTS_DIR")
    with pytest.raises(ModelLoadError, match="SPIRITLM_CHECKPOINTS_DIR"):
        load_model("spiritlm")


def test_unknown_spec_and_embedded_dtype():
    with pytest.raises(ModelLoadError, match="Unknown model spec 'nonsense'"):
        load_model("nonsense")
    with pytest.raises(ModelLoadError, match="fp32 only"):
        load_model("embedded", dtype=torch.bfloat16)
