"""The speech-text model registry (issue 27): every registered model's spec names things that exist (loaders, unit
tokenizer, family, default and expected profiles), lookups fail with the available names, and the readers agree with
the specs (the CLI's --model choices, the cost model, the front end, the model choice)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from artifact.core import speechtext
from artifact.core.speechtext import (
    EMBEDDED,
    LOADERS,
    SPEECH_TEXT_MODELS,
    SPIRITLM,
    SPIRITLM_FORMAT,
    UnknownModelError,
    register,
    speech_text_model,
)
from artifact.experiments.choice import ModelSelectionError, select_model
from artifact.experiments.profiles import PROFILES
from artifact.models.families import FAMILIES
from artifact.speech.units import UNIT_TOKENIZERS

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", list(SPEECH_TEXT_MODELS))
def test_every_spec_names_what_exists(name):
    spec = speech_text_model(name)
    assert all(model in LOADERS for model in spec.arm_models.values())
    assert spec.unit_tokenizer in UNIT_TOKENIZERS.names
    assert spec.family in FAMILIES
    assert spec.default_profile in PROFILES
    for folder in spec.expected_profiles:
        assert (REPO_ROOT / "expected" / folder).is_dir(), folder
    if spec.training_manifest is not None:
        assert spec.training_manifest_path().is_file()


def test_the_two_models_as_the_pipeline_ran_them():
    assert list(SPEECH_TEXT_MODELS)[:2] == ["embedded", "spiritlm"]
    assert dict(EMBEDDED.arm_models) == {"t2t": "embedded", "s2t": "embedded-speech"}
    assert dict(SPIRITLM.arm_models) == {"t2t": "spiritlm", "s2t": "spiritlm"}
    assert (EMBEDDED.default_profile, SPIRITLM.default_profile) == ("smoke", "review")
    assert SPIRITLM.prompt_format is SPIRITLM_FORMAT and SPIRITLM.checkpoints and not EMBEDDED.checkpoints


def test_unknown_names_and_duplicates_fail_with_the_fix(monkeypatch):
    with pytest.raises(UnknownModelError, match=r"Unknown speech-text model 'spiritlmm'\. Did you mean 'spiritlm'\?"
                                                r" Available: embedded, spiritlm"):
        speech_text_model("spiritlmm")
    with pytest.raises(ValueError, match="'embedded' is already registered"):
        register(EMBEDDED)
    with pytest.raises(ValueError, match="must name a model for each arm"):
        dataclasses.replace(EMBEDDED, arm_models={"t2t": "embedded"})
    with pytest.raises(ValueError, match="has no speech marker"):
        dataclasses.replace(EMBEDDED, prompt_format=speechtext.PLAIN)
    with pytest.raises(ModelSelectionError, match="--model must be one of 'embedded', 'spiritlm'; got 'gpt2'"):
        select_model("gpt2", None)


def test_a_registered_model_is_read_by_the_cli_cost_model_and_choice(monkeypatch):
    from artifact.cli import build_parser
    from artifact.experiments.cost import estimate, model_shape

    monkeypatch.delenv("SPIRITLM_CHECKPOINTS_DIR", raising=False)
    twin = dataclasses.replace(EMBEDDED, name="twin", description="a twin of the embedded models",
                               shape={**EMBEDDED.shape, "layers": 3}, expected_profiles=())
    monkeypatch.setitem(SPEECH_TEXT_MODELS, "twin", twin)
    args = build_parser().parse_args(["pipeline", "--model", "twin"])
    assert args.model == "twin"
    assert model_shape("twin").layers == 3
    ratio = (estimate(PROFILES["smoke"], "twin", "cpu")["trace_seconds"]
             / estimate(PROFILES["smoke"], "embedded", "cpu")["trace_seconds"])
    # 3 of 30 layers: a tenth of the cells, each restored run a tenth as deep, about (3/30)^2 plus the head's share
    assert 0.01 < ratio < 0.03
    choice = select_model("twin", None)
    assert choice.banner.startswith("model: a twin of the embedded models, as asked (--model twin)")
    assert (choice.t2t_model, choice.s2t_model) == ("embedded", "embedded-speech")
    monkeypatch.setitem(SPEECH_TEXT_MODELS, "twin", dataclasses.replace(twin, family="mamba"))
    with pytest.raises(ModelSelectionError, match="names family 'mamba', which models/families.py lacks"):
        select_model("twin", None)
