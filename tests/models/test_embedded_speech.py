"""The shipped embedded speech-text model: its fingerprint, its fact lists, and speech that it really answers."""

import json

import pytest
import torch

from artifact.core.fileio import sha256_file
from artifact.facts import facts_fingerprint, load_facts
from artifact.models import load_model
from artifact.models.embedded_speech import MANIFEST_FILE, NEW_TOKENS, ROWS_FILE, SHIPPED_DIR, load_rows
from artifact.models.errors import ModelLoadError

# A training fact of the shipped model (manifest "train_facts") that it answers from speech: the first such fact of
# the own set, so the command test below speaks few prompts.
TRAINING_FACT = "own:0"
SIZE_LIMIT = 4 * 2**20  # "a few MB at most"


@pytest.fixture(scope="module")
def manifest():
    return json.loads((SHIPPED_DIR / MANIFEST_FILE).read_text())


@pytest.fixture(scope="module")
def speech_model():
    return load_model("embedded-speech")


def test_shipped_file_is_small_and_matches_its_fingerprint(manifest):
    rows = SHIPPED_DIR / ROWS_FILE
    assert rows.stat().st_size < SIZE_LIMIT
    assert sha256_file(rows) == manifest["rows_sha256"]
    assert manifest["new_tokens"] == len(NEW_TOKENS) == 503
    assert "train-speech-lm" in manifest["command"] and manifest["distill_config"]["seed"] == 0


def test_fact_lists_ship_with_the_model(manifest):
    train, held = manifest["train_facts"], manifest["held_out_facts"]
    assert train and held and not set(train) & set(held)
    assert 0.15 < len(held) / (len(train) + len(held)) < 0.25
    assert TRAINING_FACT in train
    own = load_facts("own")
    assert manifest["facts_fingerprints"]["own"] == facts_fingerprint(own)


def test_a_changed_file_is_refused(speech_model, tmp_path, manifest):
    folder = tmp_path / "rows"
    folder.mkdir()
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest))
    data = bytearray((SHIPPED_DIR / ROWS_FILE).read_bytes())
    data[-1] ^= 1
    (folder / ROWS_FILE).write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match="sha256"):
        load_rows(speech_model.model, speech_model.tokenizer.convert_tokens_to_ids("[Text]"), folder)


def test_text_model_is_untouched(speech_model, embedded):
    first_new = speech_model.tokenizer.convert_tokens_to_ids("[Text]")
    assert first_new == len(embedded.tokenizer)
    base = embedded.model.get_input_embeddings().weight
    assert torch.equal(speech_model.model.get_input_embeddings().weight[:first_new], base)


def test_a_training_fact_is_answered_from_speech(speech_model):
    from artifact.experiments.arms import spoken_items
    from artifact.known import check_known_prompts
    from artifact.speech.front_end import FrontEndConfig, SpeechFrontEnd

    source, known_id = TRAINING_FACT.split(":")
    fact = next(f for f in load_facts(source) if str(f.known_id) == known_id)
    items, skipped, _ = spoken_items(speech_model, [fact], SpeechFrontEnd(FrontEndConfig.offline()), progress=False)
    assert not skipped and items[0][1].modality == "speech"
    (check,) = check_known_prompts(speech_model, [fact], [items[0][1]], progress=False)
    assert check.known, f"predicted {check.predicted!r}, answer {check.answer!r}"
    assert check.p_answer > 0.5  # 0.715 with the shipped rows


def test_known_command_checks_speech(tmp_path, capsys, monkeypatch, speech_model):
    import artifact.models
    from artifact.cli import main

    monkeypatch.setattr(artifact.models, "load_model", lambda spec: speech_model)  # reuse the module's model
    out = tmp_path / "known_s2t.json"
    source, known_id = TRAINING_FACT.split(":")
    position = next(i for i, f in enumerate(load_facts(source)) if str(f.known_id) == known_id)
    assert main(["known", "--modality", "speech", "--facts", source, "--limit", str(position + 1),
                 "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["modality"] == "speech" and "[Text]" in result["rule"]
    assert result["checked"] + len(result["not_spoken"]) == position + 1
    assert known_id in map(str, result["known_ids"])


def test_training_command_writes_a_loadable_model_and_extends_a_run(tmp_path, embedded, caplog):
    """The training path end to end on 10 own facts, 1 then 2 epochs: files, manifest, fingerprint, resume."""
    from safetensors.torch import load_file

    from artifact.core.fileio import TMP_PREFIX
    from artifact.facts import save_facts
    from artifact.training.config import DistillConfig
    from artifact.training.embedded_speech import train_embedded_speech

    facts = tmp_path / "facts.json"
    save_facts(load_facts("own")[:10], facts)
    out, work = tmp_path / "out", tmp_path / "work"
    config = DistillConfig(epochs=1, batch_size=4)
    first = train_embedded_speech({"own10": str(facts)}, out, work, config, argv=["train"])
    assert sha256_file(out / ROWS_FILE) == first["rows_sha256"] == json.loads((out / MANIFEST_FILE).read_text())[
        "rows_sha256"]
    rows = load_file(out / ROWS_FILE)["new_rows"]
    assert rows.shape == (len(NEW_TOKENS), embedded.model.config.hidden_size)
    assert first["distill_config"]["threads"] == 1 and len(first["history"]) == 1
    train, held = set(first["train_facts"]), set(first["held_out_facts"])
    assert train and not train & held and len(train | held) == first["known_t2t_facts"] <= 10
    assert not list(out.glob(f"{TMP_PREFIX}*")) and not list(work.glob(f"{TMP_PREFIX}*"))  # atomic writes done
    with caplog.at_level("INFO", logger="artifact.training.distill"):
        second = train_embedded_speech({"own10": str(facts)}, out, work, DistillConfig(epochs=2, batch_size=4),
                                       argv=["train"])
    assert "resuming distillation at epoch 1" in caplog.text  # resumed from the checkpoint, not retrained
    assert second["history"][0] == first["history"][0] and len(second["history"]) == 2
    assert second["rows_sha256"] != first["rows_sha256"]
