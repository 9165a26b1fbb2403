"""The Known-t2t filter on the real embedded model, batching, SpiritLM's prompt path, and the `known` command."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from artifact.cli import main
from artifact.core.speechtext import PLAIN, SPIRITLM_FORMAT
from artifact.facts import Fact, load_facts
from artifact.known import KNOWN_RULE, check_known, known_facts, next_token_probs, text_mode_banned_ids
from artifact.prompts.build import text_prompt


def fact(known_id: int, subject: str, template: str, attribute: str, relation_id: str = "P0") -> Fact:
    return Fact(known_id, subject, attribute, template, "", template.format(subject), relation_id)


EIFFEL = fact(0, "Eiffel Tower", "The {} is located in the city of", "Paris", "P131")
FRANCE = fact(1, "France", "The capital of {} is", "Paris", "P36")
AUSTRALIA = fact(2, "Australia", "The capital of {} is", "Canberra", "P36")  # SmolLM2 says Sydney
MICROSOFT = fact(3, "Microsoft", "{} was founded by", "Bill Gates", "P112")  # SmolLM2 says " a"
JORDAN = fact(4, "Michael Jordan", "{} is a professional", "basketball", "P641")
# known_1000 record 824: ")'s" is one token, so the subject cannot be traced, but the fact can still be checked.
CCF = fact(824, "Co-operative Commonwealth Federation (Ontario Section)", "{}'s headquarters are in", "Toronto", "P159")


def test_rule_on_facts_the_embedded_model_knows_and_does_not(embedded):
    facts = [EIFFEL, FRANCE, AUSTRALIA, MICROSOFT]
    checks = check_known(embedded, facts, progress=False)
    assert [c.known_id for c in checks] == [0, 1, 2, 3]
    assert [c.known for c in checks] == [True, True, False, False]
    assert checks[0].answer == " Paris" and checks[0].predicted == " Paris"
    assert checks[0].p_answer == pytest.approx(0.70, abs=0.03)  # BRIEF section 4
    assert checks[2].answer == " Canberra" and checks[2].predicted == " Sydney"
    assert checks[3].answer == " Bill" and checks[3].predicted != " Bill"
    for f, c in zip(facts, checks):
        # Same prompt and answer token as the tracer uses, and the same greedy token as a plain forward.
        prompt = text_prompt(embedded.tokenizer, f.prompt, f.subject, f.attribute, PLAIN)
        assert c.answer_id == prompt.target_id
        with torch.no_grad():
            logits = embedded.model(torch.tensor([prompt.input_ids])).logits[0, -1]
        assert c.predicted_id == int(logits.argmax())
        assert c.p_answer == pytest.approx(float(torch.softmax(logits, -1)[c.answer_id]), abs=1e-5)
        # the margin: answer logit minus the best other logit; the top-1/top-2 gap when known, < 0 exactly when not
        top2 = torch.topk(logits, 2).values
        gap = float(top2[0] - top2[1]) if c.known else float(logits[c.answer_id] - logits[c.predicted_id])
        assert c.margin == pytest.approx(gap, abs=1e-4) and (c.margin > 0) == c.known
    assert known_facts(facts, checks) == [EIFFEL, FRANCE]
    assert "greedy next token" in KNOWN_RULE and "first token of the attribute" in KNOWN_RULE


def test_batched_equals_one_by_one(embedded):
    facts = [EIFFEL, FRANCE, AUSTRALIA, MICROSOFT, JORDAN, CCF, load_facts("own")[40]]
    lengths = {len(embedded.tokenizer(f.prompt)["input_ids"]) for f in facts}
    assert len(lengths) >= 4  # rows of different lengths, so padding is exercised
    batched = check_known(embedded, facts, batch_size=4, progress=False)
    single = check_known(embedded, facts, batch_size=1, progress=False)
    for b, s in zip(batched, single):
        assert (b.known_id, b.known, b.answer_id, b.predicted_id) == (s.known_id, s.known, s.answer_id, s.predicted_id)
        assert b.p_answer == pytest.approx(s.p_answer, abs=1e-5)
        assert (b.margin is None) == (s.margin is None) and (b.margin is None or abs(b.margin - s.margin) < 1e-4)


def test_padding_does_not_leak(llama_tiny):
    rows = [[5, 6, 7, 8, 9, 10, 11], [5, 6], [12, 13, 14, 15]]
    together = next_token_probs(llama_tiny, rows, pad_id=3)
    for i, row in enumerate(rows):
        alone = next_token_probs(llama_tiny, [row])
        torch.testing.assert_close(together[i], alone[0], atol=1e-6, rtol=1e-5)
    assert not torch.allclose(together[0], together[1])


def test_spiritlm_prompt_path_adds_the_marker(sentencepiece_tokenizer):
    import transformers

    tok = sentencepiece_tokenizer
    config = transformers.LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config).eval()
    seen: list[list[int]] = []
    model.get_input_embeddings().register_forward_hook(lambda _m, inputs, _o: seen.append(inputs[0][0].tolist()))
    vinson = fact(0, "Vinson Massif", "{} is located in the continent of", "Antarctica", "P30")
    spirit = check_known(SimpleNamespace(model=model, tokenizer=tok, prompt_format=SPIRITLM_FORMAT), [vinson], progress=False)[0]
    plain = check_known(SimpleNamespace(model=model, tokenizer=tok, prompt_format=PLAIN), [vinson], progress=False)[0]
    marked = text_prompt(tok, vinson.prompt, vinson.subject, vinson.attribute, SPIRITLM_FORMAT)
    unmarked = text_prompt(tok, vinson.prompt, vinson.subject, vinson.attribute, PLAIN)
    text_id = tok.convert_tokens_to_ids("[Text]")
    assert seen == [list(marked.input_ids), list(unmarked.input_ids)]  # what the model saw: the tracer's prompts
    assert seen[0][0] == tok.bos_token_id and text_id in seen[0][1 : marked.subject_range[0]]  # BOS, then [Text]
    assert text_id not in seen[1]
    assert marked.subject_range[0] > unmarked.subject_range[0]  # the marker shifts the subject's positions
    assert seen[0][marked.subject_range[1]:] == seen[1][unmarked.subject_range[1]:]  # same text after the subject
    assert spirit.answer_id == plain.answer_id == marked.target_id
    assert spirit.p_answer != plain.p_answer  # the marker reached the model


def test_greedy_token_is_taken_in_text_mode(sentencepiece_tokenizer):
    """SpiritLM's text-output decoding bans [Text], [Speech] and the unit tokens; the Known check takes its argmax
    over the rest. A model whose top token after the prompt is [Speech] still knows the fact when the best text
    token is the answer."""
    import transformers

    tok = sentencepiece_tokenizer
    banned = text_mode_banned_ids(tok)
    assert banned == list(range(32000, 32503))  # [Text], [Speech], [Hu0]..[Hu500], found by name
    config = transformers.LlamaConfig(vocab_size=32512, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config).eval()
    vinson = fact(0, "Vinson Massif", "{} is located in the continent of", "Antarctica", "P30")
    prompt = text_prompt(tok, vinson.prompt, vinson.subject, vinson.attribute, SPIRITLM_FORMAT)
    speech_id = tok.convert_tokens_to_ids("[Speech]")
    with torch.no_grad():
        hidden = model.model(torch.tensor([prompt.input_ids])).last_hidden_state[0, -1]  # [d_model], after the norm
        head = model.get_output_embeddings().weight
        head[prompt.target_id] = hidden * 5.0 / hidden.dot(hidden)  # logit 5 for the answer
        head[speech_id] = hidden * 9.0 / hidden.dot(hidden)  # logit 9 for [Speech]: the top token overall
    assert int(next_token_probs(model, [prompt.input_ids])[0].argmax()) == speech_id
    loaded = SimpleNamespace(model=model, tokenizer=tok, prompt_format=SPIRITLM_FORMAT)
    check = check_known(loaded, [vinson], progress=False)[0]
    assert check.predicted_id == prompt.target_id and check.known
    assert check.margin > 0  # measured against the best *text* token, not against [Speech] 4 logits higher
    assert "get_forbidden_tokens(generate_only_text=True)" in KNOWN_RULE
    # a fact whose answer starts with a bare '▁' (digits: ' 1889' -> '▁', '1', ...) is not known, and says why,
    # without stopping the check of the others
    eiffel = fact(1, "Eiffel Tower", "The {} was completed in", "1889", "P571")
    checks = check_known(loaded, [eiffel, vinson], progress=False)
    assert [c.known_id for c in checks] == [1, 0] and [c.known for c in checks] == [False, True]
    assert "bare space" in checks[0].problem and checks[0].p_answer is None and checks[1].problem == ""


def test_invalid_arguments(embedded):
    with pytest.raises(ValueError, match="text prompts only"):
        check_known(embedded, [EIFFEL], modality="speech")
    with pytest.raises(ValueError, match="batch_size"):
        check_known(embedded, [EIFFEL], batch_size=0)
    with pytest.raises(ValueError, match="do not belong"):
        known_facts([EIFFEL], check_known(embedded, [FRANCE], progress=False))


def test_known_command(embedded, tmp_path, capsys, monkeypatch):
    import artifact.models

    monkeypatch.setattr(artifact.models, "load_model", lambda spec: embedded)  # reuse the session's model
    facts_file = tmp_path / "facts.json"
    facts_file.write_text(json.dumps([f.to_dict() for f in (EIFFEL, AUSTRALIA, FRANCE)]))
    out = tmp_path / "known.json"
    assert main(["known", "--model", "embedded", "--facts", str(facts_file), "--limit", "2", "--out", str(out)]) == 0
    assert "knows 1 of 2 facts" in capsys.readouterr().out
    result = json.loads(out.read_text())
    assert result["rule"] == KNOWN_RULE
    assert (result["checked"], result["known"], result["known_ids"], result["facts_in_file"]) == (2, 1, [0], 3)
    assert [c["known"] for c in result["checks"]] == [True, False]


@pytest.fixture(scope="module")
def spiritlm_folder(tmp_path_factory):
    """SpiritLM base's model folder in its formats (tests/support/spiritlm_checkpoint.py): a tokenizer of 32503 tokens
    and an LM whose output layer has 32512 rows, the last nine padding rows no token decodes to; tiny random weights,
    with padding row PADDING_ROW set so that it wins the plain argmax after every prompt of PADDED_FACTS."""
    from artifact.models import load_model
    from artifact.prompts.build import speech_prompt
    from artifact.speech.base import SpeechUnits
    from tests.support.spiritlm_checkpoint import MODEL_SUBDIR, random_model, save_model, write_tokenizer

    folder = tmp_path_factory.mktemp("checkpoints") / MODEL_SUBDIR
    write_tokenizer(folder)
    save_model(folder, random_model())
    loaded = load_model(str(folder), device="cpu")
    tok = loaded.tokenizer
    prompts = [text_prompt(tok, f.prompt, f.subject, f.attribute, SPIRITLM_FORMAT) for f in PADDED_FACTS]
    units = SpeechUnits.from_frames([7, 7, 99, 3, 3, 3, 41, 250, 250, 12])
    prompts += [speech_prompt(tok, units, (1, 3), f.attribute) for f in PADDED_FACTS]
    with torch.no_grad():
        hidden = torch.stack([loaded.model.model(torch.tensor([p.input_ids])).last_hidden_state[0, -1]
                              for p in prompts])  # [prompts, d_model], after the final norm
        row = torch.linalg.lstsq(hidden, torch.full((len(prompts), 1), 40.0)).solution[:, 0]  # logit 40 everywhere
        loaded.model.get_output_embeddings().weight[PADDING_ROW] = row
    save_model(folder, loaded.model)
    return folder, prompts


PADDING_ROW = 32507  # one of SpiritLM base's padding rows 32503..32511
PADDED_FACTS = [EIFFEL, FRANCE, fact(5, "Vinson Massif", "{} is located in the continent of", "Antarctica", "P30")]


def test_padding_rows_of_the_output_layer_are_never_the_greedy_token(spiritlm_folder, tmp_path):
    """SpiritLM base's output layer has 32512 rows for 32503 tokens: an argmax on a padding row would make
    tokenizer.decode raise IndexError. The Known check (T->T and S->T) and the trace command's default answer take
    their argmax over the tokens the tokenizer can decode, in text mode."""
    from artifact.known import check_known_prompts, output_rows
    from artifact.models import load_model

    folder, prompts = spiritlm_folder
    loaded = load_model(str(folder), device="cpu")
    tok = loaded.tokenizer
    assert len(tok) == 32503 and output_rows(loaded.model) == 32512
    with pytest.raises(IndexError):
        tok.decode([PADDING_ROW])  # the trap
    logits = torch.stack([loaded.model(torch.tensor([p.input_ids])).logits[0, -1] for p in prompts]).detach()
    assert (logits.argmax(1) == PADDING_ROW).all()  # a plain argmax picks the padding row after every prompt
    banned = text_mode_banned_ids(tok, output_rows(loaded.model))
    assert banned == list(range(32000, 32512))  # the markers and units by name, then the rows beyond the tokenizer
    allowed = logits.clone()
    allowed[:, banned] = -torch.inf
    text_checks = check_known(loaded, PADDED_FACTS, progress=False)
    speech_checks = check_known_prompts(loaded, PADDED_FACTS, prompts[len(PADDED_FACTS):], progress=False)
    for check, best in zip(text_checks + speech_checks, allowed.argmax(1).tolist()):
        assert check.predicted_id == best < 32000 and check.predicted == tok.decode([best])
        assert check.margin is not None and check.margin < 40  # measured against decodable text tokens only
    out = tmp_path / "trace"
    assert main(["trace", "--model", str(folder), "--prompt", prompts[0].text, "--subject", EIFFEL.subject,
                 "--samples", "2", "--noise", "0.5", "--out", str(out)]) == 0
    settings = json.loads((out / "trace_hidden.json").read_text())
    assert settings["answer"] == tok.decode([int(allowed[0].argmax())])
    assert int(np.load(out / "trace_hidden.npz")["target_id"]) == int(allowed[0].argmax())
