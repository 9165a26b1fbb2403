"""Distillation of new embedding rows (the embedded speech-text model's training), on a tiny Llama."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from artifact.training.distill import DistillConfig, Example, distill
from artifact.training.embedded_speech import split_held_out
from tests.conftest import tiny_llama

FIRST_NEW = 90  # tiny vocab 97: ids 90..96 play the new tokens


def _examples() -> list[Example]:
    """Student prompts of new tokens standing for teacher text prompts (as [Speech][Hu..][Text] stands for text)."""
    pairs = [((90, 91, 92, 96), (5, 17, 42)), ((93, 94, 96), (8, 33, 61, 2)), ((95, 92, 91, 96), (14, 7))]
    return [Example(f"f{i}", s, t, 0, "s2t") for i, (s, t) in enumerate(pairs)]


def _train(tmp_path, epochs, model=None):
    model = model or tiny_llama()
    state = distill(model, FIRST_NEW, _examples(), {}, DistillConfig(epochs=epochs, batch_size=2, learning_rate=0.05),
                    pad_id=0, checkpoint_dir=tmp_path)
    return model, state


def test_only_new_rows_change_and_kl_falls(tmp_path):
    before = tiny_llama().get_input_embeddings().weight.detach().clone()
    model, state = _train(tmp_path, epochs=6)
    after = model.get_input_embeddings().weight.detach()
    assert torch.equal(after[:FIRST_NEW], before[:FIRST_NEW])  # the text model is bit-for-bit the frozen one
    assert not torch.equal(after[FIRST_NEW:], before[FIRST_NEW:])
    assert state.history[-1]["kl"] < 0.5 * state.history[0]["kl"]
    assert all(not p.requires_grad for p in model.parameters())


def test_resume_equals_uninterrupted(tmp_path):
    config = DistillConfig(epochs=3, batch_size=2, learning_rate=0.05)
    whole = tiny_llama()
    distill(whole, FIRST_NEW, _examples(), {}, config, 0, tmp_path / "whole")
    # a run asked for 3 epochs and killed after the first leaves the checkpoint of epoch 1
    killed = tmp_path / "killed"
    distill(tiny_llama(), FIRST_NEW, _examples(), {}, replace(config, epochs=1), 0, killed)
    saved = torch.load(killed / "checkpoint.pt", weights_only=False)
    saved["config"]["epochs"] = config.epochs
    torch.save(saved, killed / "checkpoint.pt")
    resumed = tiny_llama()
    state = distill(resumed, FIRST_NEW, _examples(), {}, config, 0, killed)
    assert state.epoch == 3 and len(state.history) == 3
    assert torch.equal(resumed.get_input_embeddings().weight, whole.get_input_embeddings().weight)


def test_stopping_early_equals_the_same_epoch_of_a_longer_run(tmp_path):
    """No schedule: a 2-epoch run is epoch 2 of a 3-epoch run, and raising --epochs resumes it to the same end."""
    config = DistillConfig(epochs=3, batch_size=2, learning_rate=0.05)
    whole = tiny_llama()
    state_whole = distill(whole, FIRST_NEW, _examples(), {}, config, 0, tmp_path / "whole")
    short = tiny_llama()
    state_short = distill(short, FIRST_NEW, _examples(), {}, replace(config, epochs=2), 0, tmp_path / "short")
    assert state_short.history == state_whole.history[:2]
    extended = tiny_llama()
    state = distill(extended, FIRST_NEW, _examples(), {}, config, 0, tmp_path / "short")
    assert state.history == state_whole.history
    assert torch.equal(extended.get_input_embeddings().weight, whole.get_input_embeddings().weight)
    with pytest.raises(ValueError, match="already at epoch 3"):
        distill(tiny_llama(), FIRST_NEW, _examples(), {}, replace(config, epochs=2), 0, tmp_path / "short")


def test_trains_with_the_configured_threads_and_restores_the_callers(tmp_path):
    """The thread count is a setting (it changes float reductions), not whatever the machine has."""
    seen = []
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        distill(tiny_llama(), FIRST_NEW, _examples(), {}, DistillConfig(epochs=1, batch_size=2, threads=1), 0,
                tmp_path, progress=lambda _line: seen.append(torch.get_num_threads()))
        assert seen == [1]
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ValueError, match="threads"):
        DistillConfig(threads=0)


def test_resume_with_other_settings_is_an_error(tmp_path):
    distill(tiny_llama(), FIRST_NEW, _examples(), {}, DistillConfig(epochs=1, batch_size=2), 0, tmp_path)
    with pytest.raises(ValueError, match="other settings"):
        distill(tiny_llama(), FIRST_NEW, _examples(), {}, DistillConfig(epochs=1, batch_size=3), 0, tmp_path)


def test_held_out_split_is_fixed_and_20_percent():
    keys = [f"known_1000:{i}" for i in range(100)] + [f"own:{i}" for i in range(50)]
    train, held = split_held_out(keys)
    assert len(held) == 30 and len(train) == 120 and not set(train) & set(held)
    again_train, again_held = split_held_out(list(reversed(keys)))
    assert set(again_held) == set(held)
