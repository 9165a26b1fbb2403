"""TF32 is off wherever the artifact runs torch (issue 25, finding 8), and the run manifest says so.

torch 2.6's defaults leave cuDNN's TF32 on (convolutions of HuBERT and Whisper on a GPU); the tests start from every
flag on, as a host or an earlier library could leave them, and check that loading a model or creating a speech
backend turns them off."""

from __future__ import annotations

import pytest
import torch

from artifact import manifest
from artifact.models.numerics import numerics_state, strict_fp32


@pytest.fixture
def tf32_on():
    """Every TF32 switch on (restored afterwards)."""
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
             torch.get_float32_matmul_precision())
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.set_float32_matmul_precision("high")
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved[:2]
    torch.set_float32_matmul_precision(saved[2])


OFF = {"tf32_matmul": False, "tf32_cudnn": False, "float32_matmul_precision": "highest"}


def test_strict_fp32_turns_every_switch_off(tf32_on):
    assert numerics_state() == {"tf32_matmul": True, "tf32_cudnn": True, "float32_matmul_precision": "high"}
    assert strict_fp32() == OFF == numerics_state()


def test_loading_a_model_turns_tf32_off(tf32_on, tmp_path):
    from artifact.models import load_model
    from tests.support.spiritlm_checkpoint import random_model, save_model, write_tokenizer

    write_tokenizer(tmp_path)  # SpiritLM's folder layout with a tiny random LM
    save_model(tmp_path, random_model())
    loaded = load_model(str(tmp_path), device="cpu")
    assert loaded.dtype == torch.float32 and numerics_state() == OFF


def test_speech_backends_are_created_with_tf32_off(tf32_on):
    from artifact.speech.units import UNIT_TOKENIZERS

    UNIT_TOKENIZERS.create("kmeans-logmel")
    assert numerics_state() == OFF


def test_the_manifest_records_the_tf32_flags(tf32_on):
    assert manifest.environment()["numerics"]["tf32_cudnn"] is True  # it records what is set, not a constant
    strict_fp32()
    assert manifest.environment()["numerics"] == OFF


def test_a_run_dtype_is_checked_by_name():
    from artifact.experiments.pipeline import torch_dtype

    assert torch_dtype("float64") is torch.float64 and torch_dtype(None) is None
    with pytest.raises(ValueError, match="dtype must be one of float32, bfloat16, float64; got 'float16'"):
        torch_dtype("float16")
