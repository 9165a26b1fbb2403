"""Integration on the real embedded SmolLM2-135M: loading, the Eiffel Tower trace, noise calibration, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from artifact.prompts import answer_token_id, find_subject_range
from artifact.tracing import TraceConfig, calibrate_noise, trace_fact
from artifact.tracing.hooks import Patch, prepare_context, run_groups

PROMPT = "The Eiffel Tower is located in the city of"


def test_embedded_model_is_fp32_llama(embedded):
    assert embedded.model.config.model_type == "llama"
    assert embedded.dtype == torch.float32
    assert embedded.adapter.num_layers == 30
    assert not embedded.model.training


def test_eiffel_tower_trace(embedded):
    tok = embedded.tokenizer
    input_ids = torch.tensor(tok(PROMPT)["input_ids"])
    subject = find_subject_range(tok, PROMPT, "Eiffel Tower")
    target = answer_token_id(tok, PROMPT, "Paris")
    assert tok.decode([target]) == " Paris"
    with torch.no_grad():
        assert int(embedded.model(input_ids[None]).logits[0, -1].argmax()) == target
    last = len(input_ids) - 1
    config = TraceConfig(kind="hidden", samples=10, noise=0.1, positions=(subject[1] - 1, last))
    result = trace_fact(embedded.model, input_ids, subject, target, config)
    assert result.high_score == pytest.approx(0.70, abs=0.02)
    assert result.low_score < result.high_score
    # the last layer's state at the last token determines the output: restoring it gives the clean score
    assert result.scores[last, -1] == pytest.approx(result.high_score, abs=1e-5)
    # restoring every layer's hidden state at every token gives the clean score too
    ctx, (high, _), _ = prepare_context(embedded.model, embedded.adapter, input_ids, subject, target, config)
    everything = [Patch("hidden", layer, t) for layer in range(30) for t in range(len(input_ids))]
    probs, _ = run_groups(ctx, [everything], batch_size=10)
    assert probs[0] == pytest.approx(high, abs=1e-5)
    # the log-probability metric is consistent with the probability one
    assert result.high_logprob == pytest.approx(np.log(result.high_score), abs=1e-5)
    assert result.low_logprob <= np.log(result.low_score) + 1e-9  # Jensen: mean log <= log mean


def test_noise_calibration(embedded, known_1000_path):
    subjects = [r["subject"] for r in json.loads(known_1000_path.read_text())]
    noise = calibrate_noise(embedded.model, embedded.tokenizer, subjects)
    one = calibrate_noise(embedded.model, embedded.tokenizer, subjects[:1])
    assert 0 < noise < 10 and noise != one
    with pytest.raises(ValueError, match="No subjects"):
        calibrate_noise(embedded.model, embedded.tokenizer, [])


def test_trace_command_writes_result_and_heatmap(tmp_path, capsys):
    from artifact.cli import main

    code = main(["trace", "--prompt", PROMPT, "--subject", "Eiffel Tower", "--samples", "2", "--noise", "0.1",
                 "--kind", "attn", "--out", str(tmp_path)])
    assert code == 0
    out = capsys.readouterr().out
    assert "' Paris'" in out and "attn: high 0.70" in out
    data = np.load(tmp_path / "trace_attn.npz")
    assert data["scores"].shape == (10, 30)
    assert (tmp_path / "trace_attn.png").stat().st_size > 1000
    assert json.loads((tmp_path / "trace_attn.json").read_text())["config"]["kind"] == "attn"


def test_trace_command_reports_bad_subject_without_traceback(capsys):
    from artifact.cli import main

    code = main(["trace", "--prompt", PROMPT, "--subject", "Louvre", "--samples", "2", "--noise", "0.1"])
    assert code == 2
    assert "does not occur" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["hidden", "mlp", "attn"])
def test_fast_path_matches_reference_on_embedded(embedded, kind):
    from artifact.models.stepping import stepper_for
    from artifact.tracing.reference import reference_trace

    tok = embedded.tokenizer
    input_ids = torch.tensor(tok(PROMPT)["input_ids"])
    subject = find_subject_range(tok, PROMPT, "Eiffel Tower")
    target = answer_token_id(tok, PROMPT, "Paris")
    assert stepper_for(embedded.model, embedded.adapter, len(input_ids)) is not None
    config = TraceConfig(kind=kind, samples=2, noise=0.1, positions=(subject[1] - 1,), batch_size=16)
    result = trace_fact(embedded.model, input_ids, subject, target, config)
    expected = reference_trace(embedded.model, input_ids, subject, target, config)
    np.testing.assert_allclose(result.scores, expected["scores"], atol=1e-5, rtol=0, equal_nan=True)
    np.testing.assert_allclose(result.logprobs, expected["logprobs"], atol=1e-5, rtol=0, equal_nan=True)
    assert result.low_score == pytest.approx(expected["low_score"], abs=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("kind, window", [("hidden", 1), ("mlp", 10), ("attn", 10), ("mlp", 1), ("attn", 61)])
def test_fast_path_matches_reference_on_embedded_full(embedded, kind, window):
    """samples=10 as in the paper, every token position (minutes each)."""
    from artifact.tracing.reference import reference_trace

    tok = embedded.tokenizer
    input_ids = torch.tensor(tok(PROMPT)["input_ids"])
    subject = find_subject_range(tok, PROMPT, "Eiffel Tower")
    target = answer_token_id(tok, PROMPT, "Paris")
    config = TraceConfig(kind=kind, samples=10, noise=0.1, window=window, batch_size=70)
    result = trace_fact(embedded.model, input_ids, subject, target, config)
    expected = reference_trace(embedded.model, input_ids, subject, target, config)
    np.testing.assert_allclose(result.scores, expected["scores"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(result.logprobs, expected["logprobs"], atol=1e-5, rtol=0)
    other = trace_fact(embedded.model, input_ids, subject, target, TraceConfig(**{**config.to_dict(), "batch_size": 300}))
    np.testing.assert_allclose(other.scores, result.scores, atol=1e-5, rtol=0)
