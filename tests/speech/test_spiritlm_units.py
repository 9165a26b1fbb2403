"""The `spiritlm` unit tokenizer run end to end on tiny random checkpoints in Meta's exact formats
(`tests/support/spiritlm_speech_tokenizer.py`): spiritlm's own loaders read them, our tokenizer gives the same
units as spiritlm's `spiritlm_hubert()` path, only the two hubert_25hz files are needed, `[Hu500]` survives, and
the speech cache is keyed by the checkpoints' fingerprint."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("spiritlm.speech_tokenizer", reason="Meta's spiritlm package is not installed (scripts/test.sh "
                    "installs it from ../shared/vendor; or run scripts/install_spiritlm.sh)")
import torch  # noqa: E402

from artifact.core.spiritlm import SPEECH_TOKENIZER_FILES, missing_checkpoint_files  # noqa: E402
from artifact.speech import FrontEndConfig, SpeechFrontEnd, espeak  # noqa: E402
from artifact.speech.units import SpiritLMUnitTokenizer  # noqa: E402
from tests.support.spiritlm_speech_tokenizer import HUBERT_FILE, QUANTIZER_FILE, write_hubert_25hz  # noqa: E402

needs_espeak = pytest.mark.skipif(not espeak.available(), reason="espeak-ng (libespeak-ng) is not installed")
EIFFEL = "The Eiffel Tower is located in the city of"
HUBERT_DIR = SPEECH_TOKENIZER_FILES[0].parent  # speech_tokenizer/hubert_25hz


def _root(base: Path, seed: int = 0) -> Path:
    """A checkpoints root holding only speech_tokenizer/hubert_25hz/{the two files}."""
    write_hubert_25hz(base / HUBERT_DIR, seed=seed)
    return base


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return _root(tmp_path_factory.mktemp("checkpoints"))


@pytest.fixture(scope="module")
def eiffel_audio() -> np.ndarray:
    if not espeak.available():
        pytest.skip("espeak-ng (libespeak-ng) is not installed")
    from artifact.speech.tts import create_tts

    return create_tts("espeak-ng").synthesize(EIFFEL)


def test_generated_files_load_through_spiritlms_own_loaders(root, tmp_path):
    from spiritlm.speech_tokenizer.hubert.hubert_model import load_hubert_model
    from spiritlm.speech_tokenizer.hubert.quantizer_model import load_quantizer_model

    folder = root / HUBERT_DIR
    model, model_cfg, task_cfg = load_hubert_model(str(folder / HUBERT_FILE))
    strides = [stride for _, _, stride in eval(model_cfg.conv_feature_layers)]
    assert math.prod(strides) == 640 and task_cfg.sample_rate == 16_000  # 25 Hz
    assert model_cfg.encoder_layers >= 11 and len(model.encoder.layers) == model_cfg.encoder_layers
    # spiritlm loads with strict=False: every weight the model has must come from the file, none left random
    saved = torch.load(folder / HUBERT_FILE, weights_only=True)
    assert set(saved) == {"model_cfg", "task_cfg", "model_weight", "dictionaries_symbols"}
    loaded = model.state_dict()
    assert set(loaded) == set(saved["model_weight"]) - {"label_embs_concat", "final_proj.weight", "final_proj.bias"}
    assert all(torch.equal(loaded[key], saved["model_weight"][key]) for key in loaded)
    quantizer = load_quantizer_model(str(folder / QUANTIZER_FILE), is_linear_quantizer=True)
    assert quantizer.vocab_size == 500 and quantizer.encoder[-1].out_features == 501
    sizes = [(folder / name).stat().st_size for name in (HUBERT_FILE, QUANTIZER_FILE)]
    assert sum(sizes) < 4_000_000, sizes
    write_hubert_25hz(tmp_path / "same", seed=0)
    write_hubert_25hz(tmp_path / "other", seed=1)
    for name in (HUBERT_FILE, QUANTIZER_FILE):
        assert (tmp_path / "same" / name).read_bytes() == (folder / name).read_bytes()
        assert (tmp_path / "other" / name).read_bytes() != (folder / name).read_bytes()


@needs_espeak
def test_units_equal_spiritlms_own_spiritlm_hubert_path(root, eiffel_audio, monkeypatch):
    import spiritlm.speech_tokenizer.hubert as spiritlm_hubert_module
    from spiritlm.speech_tokenizer import SpiritLMTokenizer

    monkeypatch.delenv("SPIRITLM_CHECKPOINTS_DIR", raising=False)  # ours gets the root explicitly
    units = SpiritLMUnitTokenizer(checkpoints_dir=root).encode(eiffel_audio)
    seconds = len(eiffel_audio) / 16_000
    assert len(set(units.frames)) >= 12 and len(units.tokens) / seconds >= 15  # units follow the speech
    # spiritlm_hubert() reads the module global that spiritlm sets from $SPIRITLM_CHECKPOINTS_DIR when imported
    # (the subprocess test below sets the variable itself; importing spiritlm anew takes ~20 s)
    monkeypatch.setattr(spiritlm_hubert_module, "CHECKPOINT_DIR", root / "speech_tokenizer")
    reference = SpiritLMTokenizer(hubert_model=spiritlm_hubert_module.spiritlm_hubert())
    assert units.unit_string() == reference.encode_string(torch.from_numpy(eiffel_audio))


REFERENCE = textwrap.dedent("""
    import sys
    import numpy as np
    import torch
    torch.set_num_threads(int(sys.argv[2]))
    from spiritlm.speech_tokenizer import SpiritLMTokenizer, spiritlm_hubert  # reads SPIRITLM_CHECKPOINTS_DIR now
    tokenizer = SpiritLMTokenizer(hubert_model=spiritlm_hubert())
    print("UNITS", tokenizer.encode_string(torch.from_numpy(np.load(sys.argv[1]))))
""")


@pytest.mark.slow
@needs_espeak
def test_units_equal_spiritlm_hubert_in_a_fresh_process(root, eiffel_audio, tmp_path, monkeypatch):
    """As Meta's users run it: SPIRITLM_CHECKPOINTS_DIR set before spiritlm is imported (~20-35 s: the import)."""
    monkeypatch.delenv("SPIRITLM_CHECKPOINTS_DIR", raising=False)
    units = SpiritLMUnitTokenizer(checkpoints_dir=root).encode(eiffel_audio)
    np.save(tmp_path / "audio.npy", eiffel_audio)
    env = {**os.environ, "SPIRITLM_CHECKPOINTS_DIR": str(root)}
    done = subprocess.run([sys.executable, "-c", REFERENCE, str(tmp_path / "audio.npy"), str(torch.get_num_threads())],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    reference = [line for line in done.stdout.splitlines() if line.startswith("UNITS ")][-1].removeprefix("UNITS ")
    assert units.unit_string() == reference


def test_only_the_hubert_files_are_needed_and_a_missing_one_is_named(root, tmp_path, monkeypatch):
    assert sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file()) == sorted(SPEECH_TOKENIZER_FILES)
    speech_missing = [path for path in missing_checkpoint_files(root) if path.startswith("speech_tokenizer")]
    assert speech_missing == []  # `checkpoints check` asks for exactly what the tokenizer loads
    SpiritLMUnitTokenizer(checkpoints_dir=root)  # no vocoder, no crash
    partial = tmp_path / "partial"
    (partial / HUBERT_DIR).mkdir(parents=True)
    shutil.copy(root / HUBERT_DIR / HUBERT_FILE, partial / HUBERT_DIR / HUBERT_FILE)
    with pytest.raises(FileNotFoundError, match=f"{QUANTIZER_FILE}.*no vocoder.*checkpoints check") as error:
        SpiritLMUnitTokenizer(checkpoints_dir=partial)
    assert HUBERT_FILE not in str(error.value)
    monkeypatch.delenv("SPIRITLM_CHECKPOINTS_DIR", raising=False)
    with pytest.raises(RuntimeError, match="set SPIRITLM_CHECKPOINTS_DIR"):
        SpiritLMUnitTokenizer()
    monkeypatch.setenv("SPIRITLM_CHECKPOINTS_DIR", str(root))  # the default is read when constructed
    assert SpiritLMUnitTokenizer().settings() == SpiritLMUnitTokenizer(checkpoints_dir=root).settings()


def test_an_unreadable_checkpoint_fails_naming_its_folder(root, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(root / HUBERT_DIR, bad / HUBERT_DIR)
    (bad / HUBERT_DIR / QUANTIZER_FILE).write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match="could not load its HuBERT tokenizer from .*hubert_25hz") as error:
        SpiritLMUnitTokenizer(checkpoints_dir=bad)
    assert str(bad) in str(error.value)


@needs_espeak
def test_an_all_blank_chunk_keeps_unit_500(root, eiffel_audio, tmp_path):
    blank = tmp_path / "blank"
    shutil.copytree(root / HUBERT_DIR, blank / HUBERT_DIR)
    path = blank / HUBERT_DIR / QUANTIZER_FILE
    state = torch.load(path, weights_only=True)
    state["model_weight"]["4.bias"][500] = 1e3  # the blank (output 500) wins every frame
    torch.save(state, path)
    units = SpiritLMUnitTokenizer(checkpoints_dir=blank).encode(eiffel_audio[:16_000])
    assert set(units.frames) == {500} and units.unit_string() == "[Hu500]"


def test_fingerprint_is_in_settings_and_hashed_once(root, monkeypatch):
    import artifact.speech.units

    calls = []
    real = artifact.speech.units.sha256_file
    monkeypatch.setattr(artifact.speech.units, "sha256_file", lambda path, *a: calls.append(path) or real(path, *a))
    tokenizer = SpiritLMUnitTokenizer(checkpoints_dir=root)
    settings = tokenizer.settings()
    assert settings["checkpoint_sha256"] == {name: real(root / HUBERT_DIR / name) for name in
                                             (HUBERT_FILE, QUANTIZER_FILE)}
    assert settings["units"] == 501 and settings["frame_rate"] == 25.0 and str(root) not in str(settings)
    tokenizer.settings()
    assert len(calls) == 2


@needs_espeak
def test_speech_cache_is_keyed_by_the_quantizer(root, tmp_path, monkeypatch):
    other = tmp_path / "other"  # same HuBERT, another quantizer
    _root(other, seed=1)
    shutil.copy(root / HUBERT_DIR / HUBERT_FILE, other / HUBERT_DIR / HUBERT_FILE)
    config = FrontEndConfig.offline("spiritlm")
    cache = tmp_path / "cache"
    spoken = {}
    for name, folder in (("first", root), ("second", other)):
        monkeypatch.setenv("SPIRITLM_CHECKPOINTS_DIR", str(folder))
        front_end = SpeechFrontEnd(config, cache_dir=cache)
        spoken[name] = front_end.process(EIFFEL, "Eiffel Tower")
        direct = SpiritLMUnitTokenizer(checkpoints_dir=folder).encode(spoken[name].audio)
        assert spoken[name].units == direct
    assert spoken["first"].units.frames != spoken["second"].units.frames
    assert front_end.cache.hits >= 2  # the audio and the alignment were shared, the units were not


def test_a_hubert_checkpoint_with_other_weight_names_is_refused_naming_them(root, tmp_path):
    """spiritlm loads HuBERT with strict=False: a file whose positional convolution was trained with batch norm,
    under a config that says weight norm, would leave that layer random. It is refused before any audio is encoded,
    naming the missing and unexpected keys with their counts; the matching fixture loads."""
    SpiritLMUnitTokenizer(checkpoints_dir=root)
    bad = tmp_path / "batch-norm"
    write_hubert_25hz(bad / HUBERT_DIR, pos_conv_norm="batch")
    with pytest.raises(ValueError, match=f"{HUBERT_FILE} does not match") as error:
        SpiritLMUnitTokenizer(checkpoints_dir=bad)
    message = str(error.value)
    assert "2 weight(s) of spiritlm's HubertModel are missing" in message
    assert "encoder.pos_conv.0.weight_g" in message and "encoder.pos_conv.0.weight_v" in message
    # BatchNorm1d's weight, running_mean, running_var, num_batches_tracked and the plain conv's weight and bias (the
    # batch norm's bias shares its name with the weight-norm conv's bias: it would load into the wrong layer)
    assert "6 weight(s) of the file are unexpected" in message
    assert "encoder.pos_conv.0.running_mean" in message and "2 more" in message
    assert "random initialisation" in message and "\n" not in message


def test_a_quantizer_with_other_weight_names_is_refused_naming_them(root, tmp_path):
    bad = tmp_path / "prefixed"
    shutil.copytree(root / HUBERT_DIR, bad / HUBERT_DIR)
    path = bad / HUBERT_DIR / QUANTIZER_FILE
    state = torch.load(path, weights_only=True)
    state["model_weight"] = {f"encoder.{key}": value for key, value in state["model_weight"].items()}
    torch.save(state, path)
    with pytest.raises(ValueError, match=f"{QUANTIZER_FILE} does not match") as error:
        SpiritLMUnitTokenizer(checkpoints_dir=bad)
    message = str(error.value)
    assert "6 weight(s) of spiritlm's Sequential are missing from the file (0.weight, 0.bias, 2.weight, 2.bias, ..." \
        in message
    assert "6 weight(s) of the file are unexpected (encoder.0.weight" in message
