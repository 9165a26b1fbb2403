"""Loading a local folder in SpiritLM's exact checkpoint layout (single pytorch_model.bin, SentencePiece
tokenizer.model, BOS on, EOS off), built here with a tiny Llama and a SentencePiece model trained in the test."""

from __future__ import annotations

import shutil

import pytest
import torch

from artifact.core.spiritlm import SPIRITLM_BASE_SUBDIR, SPIRITLM_MODEL_FILES
from artifact.models import ModelLoadError, load_model
from artifact.tracing import TraceConfig, trace_fact
from tests.support.spiritlm_checkpoint import MODEL_SUBDIR, random_model, save_model, write_tokenizer


@pytest.fixture(scope="module")
def spiritlm_root(tmp_path_factory):
    """A checkpoints root holding spiritlm_model/spirit-lm-base-7b in SpiritLM's formats: Llama-style SentencePiece
    with the markers at 32000..32502, Llama 2's tokenizer JSON files, one bf16 pytorch_model.bin of a random tiny
    LlamaForCausalLM with 32512 rows (tests/support/spiritlm_checkpoint.py)."""
    root = tmp_path_factory.mktemp("checkpoints")
    write_tokenizer(root / MODEL_SUBDIR)
    save_model(root / MODEL_SUBDIR, random_model())
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
    assert loaded.prompt_format.reads_speech
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
    assert loaded.tokenizer.convert_tokens_to_ids(["[Text]", "[Speech]", "[Hu0]", "[Hu500]"]) == [
        32000, 32001, 32002, 32502]
    assert loaded.model.get_input_embeddings().weight.shape[0] == 32512
    # BRIEF section 2's trap, as the loader checks it: '[Text]' then ' Paris' is [Text], '▁Paris'
    text = loaded.tokenizer("[Text] Paris")["input_ids"]
    assert loaded.tokenizer.convert_ids_to_tokens(text[-2:]) == ["[Text]", "▁Paris"]


def test_legacy_tokenizer_with_added_markers_loads_and_answers_the_word(spiritlm_root, tmp_path):
    """Markers as added tokens (here special ones, saved by transformers itself) in SentencePiece's legacy mode split
    ' Paris' after [Text] into '▁', '▁Paris'. spiritlm loads such a tokenizer, so the loader must too (it used to
    refuse it and name a fix that edits the read-only mounted tokenizer_config.json): the S->T answer token is
    '▁Paris', the word's space being the '▁' legacy mode puts after an added token. With legacy false as well."""
    import json

    from sentencepiece import sentencepiece_model_pb2 as model_pb2
    from transformers import AddedToken, LlamaTokenizer

    from artifact.prompts.tokens import answer_token_id
    from tests.support.llama_tokenizer import LLAMA_BASE_PIECES, SPIRITLM_MARKERS

    folder = tmp_path / SPIRITLM_BASE_SUBDIR
    shutil.copytree(spiritlm_root / SPIRITLM_BASE_SUBDIR, folder)
    proto = model_pb2.ModelProto()
    proto.ParseFromString((folder / "tokenizer.model").read_bytes())
    del proto.pieces[LLAMA_BASE_PIECES:]  # the markers leave the SentencePiece model ...
    (folder / "tokenizer.model").write_bytes(proto.SerializeToString())
    tokenizer = LlamaTokenizer(str(folder / "tokenizer.model"), legacy=True)
    tokenizer.add_tokens([AddedToken(t, special=True, normalized=False) for t in SPIRITLM_MARKERS],
                         special_tokens=True)  # ... and become added tokens at the same ids
    tokenizer.save_pretrained(folder)
    assert tokenizer.convert_ids_to_tokens(tokenizer("[Text] Paris")["input_ids"])[-3:] == ["[Text]", "▁", "▁Paris"]
    for legacy in (True, False):
        config = json.loads((folder / "tokenizer_config.json").read_text())
        config["legacy"] = legacy
        (folder / "tokenizer_config.json").write_text(json.dumps(config))
        loaded = load_model(str(folder), device="cpu")
        assert loaded.tokenizer.legacy is legacy
        answer = answer_token_id(loaded.tokenizer, "[Speech][Hu99][Text]", "Paris")
        assert loaded.tokenizer.convert_ids_to_tokens(answer) == "▁Paris"


def test_bf16_folder_traces_with_fp32_softmax(spiritlm_root):
    loaded = load_model(str(spiritlm_root / SPIRITLM_BASE_SUBDIR), dtype=torch.bfloat16, device="cpu")
    assert loaded.dtype == torch.bfloat16
    # as SpiritLM's own from_pretrained(torch_dtype=bfloat16): rotary frequencies stay fp32 (a cast of the whole
    # model to bf16 would round them, with an angle error growing with the position)
    assert loaded.model.model.rotary_emb.inv_freq.dtype == torch.float32
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


def test_truncated_weights_file_is_a_load_error_naming_the_folder(spiritlm_root, tmp_path, monkeypatch):
    """A damaged pytorch_model.bin (an interrupted copy) must give the CLI's one-line error, not an OSError trace."""
    broken = tmp_path / SPIRITLM_BASE_SUBDIR
    shutil.copytree(spiritlm_root / SPIRITLM_BASE_SUBDIR, broken)
    with open(broken / "pytorch_model.bin", "r+b") as handle:
        handle.truncate(1000)
    monkeypatch.setenv("SPIRITLM_CHECKPOINTS_DIR", str(tmp_path))
    with pytest.raises(ModelLoadError, match=f"Could not load the model weights in {broken}.*damaged or incomplete"):
        load_model("spiritlm", device="cpu")


def test_unknown_spec_and_embedded_dtype():
    with pytest.raises(ModelLoadError, match="Unknown model spec 'nonsense'"):
        load_model("nonsense")
    with pytest.raises(ModelLoadError, match="run in fp32 .* or in float64 as the numerics reference; got torch.bf"):
        load_model("embedded", dtype=torch.bfloat16)
