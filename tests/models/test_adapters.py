"""Model-family adapters: every mapped name resolves, and unsupported models fail with a clear message."""

from __future__ import annotations

import pytest
import torch

from artifact.models import FAMILIES, ModelAdapter, ModelFamily, UnsupportedModelError, get_module
from tests.conftest import tiny_gpt2, tiny_llama


@pytest.mark.parametrize("model_type", ["llama", "mistral", "qwen2", "gpt2"])
def test_every_mapped_module_exists(model_type):
    model = tiny_gpt2() if model_type == "gpt2" else tiny_llama(model_type)
    adapter = ModelAdapter(model)
    assert adapter.family is FAMILIES[model_type]
    assert adapter.num_layers == 4
    names = dict(model.named_modules())
    for path in adapter.all_module_paths():
        assert path in names, path
    assert isinstance(adapter.embed, torch.nn.Embedding)
    assert adapter.module("mlp", 3) is names[FAMILIES[model_type].mlp.format(3)]


def test_unsupported_architecture_names_what_is_missing():
    class Toy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.config = type("Config", (), {"model_type": "toy"})()

    with pytest.raises(UnsupportedModelError, match="No adapter for model_type 'toy'.*Supported: gpt2, llama"):
        ModelAdapter(Toy())


def test_wrong_paths_fail_at_construction():
    model = tiny_llama()
    family = ModelFamily("broken", "model.embed_tokens", "model.blocks.{}", "model.blocks.{}.mlp",
                         "model.blocks.{}.attn", "num_hidden_layers")
    with pytest.raises(UnsupportedModelError, match="model.blocks.0"):
        ModelAdapter(model, family)
    with pytest.raises(LookupError, match="nothing.here"):
        get_module(model, "nothing.here")


def test_layer_out_of_range():
    adapter = ModelAdapter(tiny_llama())
    with pytest.raises(ValueError, match=r"layer must be in \[0, 4\)"):
        adapter.module("mlp", 4)
