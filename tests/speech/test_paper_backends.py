"""The paper's speech backends running their real third-party code here on random weights of their real
architectures (MMS_FA, Whisper, MeloTTS), MeloTTS's per-request seeding, and the availability probes that tell a run
which backends lack weights. Nothing may download: the in-process backends run with network connections refused,
MeloTTS's worker with the Hugging Face hub offline."""

from __future__ import annotations

import importlib.util
import itertools
import json
import re
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from artifact.speech import espeak
from artifact.speech.registry import Registry
from tests.support.melo_package import write_melo_package
from tests.support.paper_backends import (
    WHISPER_SMALL_DIMS,
    WHISPER_TEST_DIMS,
    melotts_environment,
    random_mms_fa,
    random_whisper,
    save_whisper_checkpoint,
)

EIFFEL = "The Eiffel Tower is located in the city of"
KNUD = "Knud, Hereditary Prince of Denmark, is a citizen of"
needs_espeak = pytest.mark.skipif(not espeak.available(), reason="espeak-ng (libespeak-ng) is not installed")


@pytest.fixture
def no_network(monkeypatch):
    """Refuse every network connection from this process (a download attempt fails loudly)."""
    def refuse(self, address, *args, **kwargs):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise OSError(f"network access attempted in a test: {address}")
        return real_connect(self, address, *args, **kwargs)

    real_connect = socket.socket.connect
    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.fixture
def one_thread():
    """One torch thread: the 2-core machines are shared, and oversubscribed threads slow decoding 5-fold."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# --- MMS_FA -----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mms_model():
    return random_mms_fa(seed=0)


@needs_espeak
def test_mms_fa_aligns_espeak_speech_word_by_word(mms_model, no_network, one_thread):
    """torchaudio's MMS_FA model (bundle parameters, random weights), its real tokenizer and CTC aligner, on
    espeak-ng speech: one time span per word, in order, contiguous and monotone, inside the audio, repeatable."""
    import torchaudio

    from artifact.speech.alignment import MMSFAAligner
    from artifact.speech.tts import EspeakTTS

    aligner = MMSFAAligner(model=mms_model, device="cpu")
    audio = EspeakTTS().synthesize(KNUD)
    words = aligner.align(audio, KNUD)
    assert [w.word for w in words] == KNUD.split()
    assert [w.char_start for w in words] == [m.start() for m in re.finditer(r"\S+", KNUD)]
    duration = len(audio) / 16_000
    assert words[0].start >= 0 and words[-1].end <= duration + 1e-6
    assert all(w.end > w.start for w in words)
    assert all(b.start >= a.end - 1e-9 for a, b in itertools.pairwise(words))  # in order, no overlap
    assert aligner.align(audio, KNUD) == words
    with torch.inference_mode():
        emission, _ = mms_model(torch.from_numpy(audio[:8000])[None])  # [1, frames, labels]
    assert emission.shape[-1] == len(torchaudio.pipelines.MMS_FA.get_dict(star=None)) == 28
    assert torch.allclose(emission.exp().sum(-1), torch.ones(1, emission.shape[1]), atol=1e-4)  # log-softmax
    settings = aligner.settings()
    assert settings["weights"].startswith("given, state_dict sha256:") and len(settings["weights"]) > 80


def test_mms_fa_settings_tell_weights_apart():
    """Given weights are named by a hash of their state dict (it keys the alignment cache)."""
    from artifact.speech.alignment import MMSFAAligner

    def linear(seed: int) -> torch.nn.Module:
        torch.manual_seed(seed)
        return torch.nn.Linear(4, 28)

    same = MMSFAAligner(model=linear(0), device="cpu").settings()
    assert MMSFAAligner(model=linear(0), device="cpu").settings() == same
    assert MMSFAAligner(model=linear(1), device="cpu").settings()["weights"] != same["weights"]


# --- Whisper ----------------------------------------------------------------------------------------------------


@needs_espeak
def test_whisper_transcribes_with_its_own_tokenizer_offline(tmp_path, no_network, one_thread):
    """openai-whisper's Whisper (small's vocabulary, mel bins and contexts; narrow, see WHISPER_TEST_DIMS) with
    random weights, its tokenizer from the package: a string, the same on every call, the same from Whisper's own
    checkpoint format, and settings that name the weights."""
    from artifact.speech.recognition import WhisperRecognizer
    from artifact.speech.tts import EspeakTTS

    audio = EspeakTTS().synthesize(EIFFEL)
    model = random_whisper(seed=0)
    recognizer = WhisperRecognizer(model=model, device="cpu")
    text = recognizer.transcribe(audio)
    assert isinstance(text, str) and text
    assert recognizer.transcribe(audio) == text
    settings = recognizer.settings()
    assert settings["model"] == "given" and settings["dims"] == WHISPER_TEST_DIMS
    assert settings["language"] == "en" and settings["decoding"] == "greedy, temperature 0"
    assert settings["weights"].startswith("state_dict sha256:")

    checkpoint = save_whisper_checkpoint(random_whisper(seed=0), tmp_path / "random.pt")
    from_file = WhisperRecognizer(model=str(checkpoint), device="cpu")
    assert from_file.transcribe(audio) == text
    assert from_file.settings()["model"] == "checkpoint file"

    other = WhisperRecognizer(model=random_whisper(seed=1), device="cpu")
    assert other.settings()["weights"] != settings["weights"]
    with pytest.raises(ValueError, match="Unknown Whisper model 'smal'"):
        WhisperRecognizer(model="smal")


@pytest.mark.slow
@needs_espeak
def test_whisper_small_architecture_transcribes(no_network, one_thread):
    """The real `small` dimensions (244M parameters), random weights: one transcription (about a minute)."""
    from artifact.speech.recognition import WhisperRecognizer
    from artifact.speech.tts import EspeakTTS

    recognizer = WhisperRecognizer(model=random_whisper(WHISPER_SMALL_DIMS, seed=0), device="cpu")
    assert isinstance(recognizer.transcribe(EspeakTTS().synthesize("the city of")), str)
    assert recognizer.settings()["dims"] == WHISPER_SMALL_DIMS


# --- availability probes ------------------------------------------------------------------------------------------


def test_whisper_probe_finds_weights_in_download_root(tmp_path, monkeypatch, no_network):
    from artifact.speech.recognition import RECOGNIZERS, WhisperRecognizer

    monkeypatch.setenv("ARTIFACT_WHISPER_DIR", str(tmp_path))
    reason = RECOGNIZERS.unavailable("whisper-small")
    assert reason and str(tmp_path) in reason and "small.pt" in reason and "fetch_weights.py" in reason
    (tmp_path / "small.pt").write_bytes(b"weights")
    assert RECOGNIZERS.unavailable("whisper-small") is None
    assert WhisperRecognizer.unavailable(model="tiny") is not None  # tiny.pt is not there
    other = tmp_path / "other"
    assert str(other) in RECOGNIZERS.unavailable("whisper-small", download_root=str(other))
    assert WhisperRecognizer.unavailable(model=random_whisper()) is None
    assert "Unknown Whisper model" in WhisperRecognizer.unavailable(model="smal")


def test_mms_fa_probe_looks_in_torch_hub_folder(tmp_path, monkeypatch):
    from artifact.speech.alignment import ALIGNERS

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    reason = ALIGNERS.unavailable("mms-fa")
    assert reason and str(tmp_path / "hub" / "checkpoints") in reason and "model.pt" in reason
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    (tmp_path / "hub" / "checkpoints" / "model.pt").write_bytes(b"weights")
    assert ALIGNERS.unavailable("mms-fa") is None
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "elsewhere"))
    assert ALIGNERS.unavailable("mms-fa", model=torch.nn.Identity()) is None


def test_registry_probe_and_offline_backends():
    from artifact.speech.alignment import ALIGNERS
    from artifact.speech.recognition import RECOGNIZERS
    from artifact.speech.tts import TTS_BACKENDS

    registry: Registry = Registry("demo")
    registry.register("plain", "collections:OrderedDict")  # a backend class without a probe counts as available
    registry.register("broken", "artifact.speech.no_such_module:Thing")
    assert registry.unavailable("plain") is None
    assert "cannot be imported" in registry.unavailable("broken")
    with pytest.raises(LookupError, match="Did you mean 'plain'"):
        registry.unavailable("plan")
    assert RECOGNIZERS.unavailable("pocketsphinx") is None and ALIGNERS.unavailable("pocketsphinx") is None
    assert (TTS_BACKENDS.unavailable("espeak-ng") is None) == espeak.available()


def _stub_melo(folder: Path) -> Path:
    """A stand-in `melo` package with MeloTTS's interface (`melo.api.TTS(language, device, use_hf, config_path,
    ckpt_path)`, `.language`, `hps.data.spk2id`, `tts_to_file(text, speaker_id, output_path, sdp_ratio,
    noise_scale, noise_scale_w, speed, quiet=...)`, audio returned when `output_path` is None) whose audio, like
    MeloTTS's, contains noise drawn from global generators (numpy's and Python's here: importing torch would double
    the test's time), and whose first synthesis, like MeloTTS's lazy BERT load, draws from the generator before it
    synthesises; it prints to stdout as MeloTTS does. Its loudness shows whether it ran with the hub offline."""
    return write_melo_package(folder, speakers=("EN-US", "EN-BR"), init="self.bert = None", methods="""
        def tts_to_file(self, text, speaker_id, output_path=None, sdp_ratio=0.2, noise_scale=0.6,
                        noise_scale_w=0.8, speed=1.0, pbar=None, format=None, position=None, quiet=False):
            print("progress chatter on stdout")
            if self.bert is None:
                self.bert = np.random.randn(16)
            n = int(44100 * 0.05 * len(text.split()) / speed)
            t = np.arange(n) / 44100
            noise = noise_scale * (random.random() + np.random.randn(n)) / 20
            amplitude = 0.5 if os.environ.get("HF_HUB_OFFLINE") == "1" else 0.2  # shows the hub mode
            audio = amplitude * np.sin(2 * np.pi * (200 + 20 * speaker_id) * t) + noise
            if output_path is None:
                return audio
            wavfile.write(output_path, 44100, (np.clip(audio, -1, 1) * 32767).astype(np.int16))
    """)


def test_melotts_worker_seeds_every_request(tmp_path, monkeypatch):
    """A text's audio is bitwise the same whatever was synthesised before it in the worker; another seed differs."""
    from artifact.speech.tts import MeloTTS

    monkeypatch.setenv("PYTHONPATH", str(_stub_melo(tmp_path / "stub")))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    first = MeloTTS(python=sys.executable)
    reseeded = MeloTTS(python=sys.executable, seed=1)
    try:
        alone = first.synthesize(EIFFEL)
        assert not np.array_equal(reseeded.synthesize(EIFFEL), alone)
        first.synthesize(KNUD)
        np.testing.assert_array_equal(first.synthesize(EIFFEL), alone)  # after another text, same worker
        assert first.settings()["seed"] == 0 and reseeded.settings()["seed"] == 1
        assert first.settings() != reseeded.settings()  # the seed keys the audio cache
    finally:
        first.close()
        reseeded.close()
    assert MeloTTS.request_seed(0, EIFFEL) != MeloTTS.request_seed(1, EIFFEL) != MeloTTS.request_seed(1, KNUD)
    assert 0 <= MeloTTS.request_seed(0, EIFFEL) < 2**32


def _hub_file(hub: Path, repo: str, filename: str) -> None:
    """An entry of the Hugging Face hub cache layout (refs/main -> snapshots/REV/filename)."""
    folder = hub / ("models--" + repo.replace("/", "--"))
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / "main").write_text("1" * 40)
    (folder / "snapshots" / ("1" * 40)).mkdir(parents=True, exist_ok=True)
    (folder / "snapshots" / ("1" * 40) / filename).write_text("{}")


def test_melotts_probe_reports_each_missing_download(tmp_path, monkeypatch):
    """The probe (worker --probe, run by MeloTTS's Python) against MeloTTS's cache layouts: every file it would
    download is named while absent, and the backend is available once all are in place."""
    from artifact.speech import melotts_worker
    from artifact.speech.tts import TTS_BACKENDS, MeloTTS

    monkeypatch.delenv("MELOTTS_PYTHON", raising=False)
    assert "MELOTTS_PYTHON" in TTS_BACKENDS.unavailable("melotts") and "install_melotts.sh" in MeloTTS.unavailable()
    assert "does not exist" in MeloTTS.unavailable(python=str(tmp_path / "nope" / "python"))
    monkeypatch.setenv("MELOTTS_PYTHON", sys.executable)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "empty"))
    assert "not importable" in TTS_BACKENDS.unavailable("melotts")

    monkeypatch.setenv("PYTHONPATH", str(_stub_melo(tmp_path / "stub")))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("NLTK_DATA", str(tmp_path / "nltk"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/nltk_data
    reason = TTS_BACKENDS.unavailable("melotts")
    for needed in ("myshell-ai/MeloTTS-English/checkpoint.pth", "myshell-ai/MeloTTS-English/config.json",
                   "bert-base-uncased/pytorch_model.bin", "tohoku-nlp/bert-base-japanese-v3/vocab.txt",
                   "taggers/averaged_perceptron_tagger.zip", "corpora/cmudict.zip", "--fetch --language EN"):
        assert needed in reason

    hub = tmp_path / "hf" / "hub"
    for name in ("config.json", "checkpoint.pth"):
        _hub_file(hub, "myshell-ai/MeloTTS-English", name)
    for repo in melotts_worker.IMPORT_TOKENIZERS:
        _hub_file(hub, repo, "vocab.txt")
    _hub_file(hub, "bert-base-uncased", "config.json")
    assert "bert-base-uncased/pytorch_model.bin" in TTS_BACKENDS.unavailable("melotts")
    online = MeloTTS()  # files missing: MeloTTS may download them, the hub stays online
    try:
        assert np.abs(online.synthesize(EIFFEL)).max() < 0.4
    finally:
        online.close()
    _hub_file(hub, "bert-base-uncased", "pytorch_model.bin")
    for resource in melotts_worker.NLTK_RESOURCES:
        (tmp_path / "nltk" / resource).parent.mkdir(parents=True, exist_ok=True)
        zipfile.ZipFile(tmp_path / "nltk" / resource, "w").close()
    if importlib.util.find_spec("unidic") is not None:  # MeloTTS's dependency, not the artifact's
        pytest.skip("unidic is installed next to the artifact; the probe would check its dictionary")
    assert TTS_BACKENDS.unavailable("melotts") is None
    assert "ckpt_path" in TTS_BACKENDS.unavailable("melotts", ckpt_path=str(tmp_path / "missing.pth"))
    offline = MeloTTS()  # everything cached: the worker runs with the hub offline (the snapshot settings() name)
    try:
        assert offline.settings()["checkpoint"] == "myshell-ai/MeloTTS-English@" + "1" * 40
        assert np.abs(offline.synthesize(EIFFEL)).max() > 0.4
    finally:
        offline.close()


# --- MeloTTS for real (its venv, its synthesizer, random weights) -------------------------------------------------


@pytest.fixture(scope="module")
def melotts_env(tmp_path_factory):
    """MeloTTS's venv (built once under the project cache by scripts/install_melotts.sh) and its offline
    stand-ins (tests/support/melotts_standins.py)."""
    from artifact.models.loading import cache_root

    try:
        return melotts_environment(cache_root() / "melotts-test")
    except FileNotFoundError as exc:
        pytest.skip(f"{exc}: the MeloTTS tests install MeloTTS from its vendored source archive")


@pytest.mark.slow
def test_melotts_synthesizes_for_real_and_seeded(melotts_env, monkeypatch):
    """Our MeloTTS class talking to melotts_worker.py in MeloTTS's own venv: melo.api.TTS(language='EN') with its
    English text front end (normalisation, MeloTTS's CMU dictionary + g2p_en, BERT features) and SynthesizerTrn
    (random weights, MeloTTS's checkpoint format, from the hub cache as the real voice would be). Bitwise the same
    audio for a text whatever came before it; another seed gives other audio."""
    from artifact.speech.tts import TTS_BACKENDS, MeloTTS

    python, env = melotts_env
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("MELOTTS_PYTHON", python)
    assert TTS_BACKENDS.unavailable("melotts") is None
    first = MeloTTS(device="cpu")
    reseeded = MeloTTS(device="cpu", seed=1)
    try:
        settings = first.settings()
        assert settings["source"] == "MeloTTS-2374f46.tar.gz" and settings["version"] == "0.1.2"
        assert settings["checkpoint"].startswith("myshell-ai/MeloTTS-English@")
        alone = first.synthesize(EIFFEL)
        assert alone.dtype == np.float32 and alone.ndim == 1 and len(alone) > 8000
        assert np.isfinite(alone).all() and np.abs(alone).max() > 1e-3
        first.synthesize(KNUD)
        np.testing.assert_array_equal(first.synthesize(EIFFEL), alone)
        assert not np.array_equal(reseeded.synthesize(EIFFEL), alone)
    finally:
        first.close()
        reseeded.close()


@pytest.mark.slow
def test_melotts_probe_of_the_real_venv(melotts_env, monkeypatch, tmp_path):
    """The probe in MeloTTS's real venv: unavailable without the downloads, available with the stand-ins."""
    from artifact.speech.tts import WORKER, MeloTTS

    python, env = melotts_env
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    reason = MeloTTS.unavailable(python=python)
    assert "myshell-ai/MeloTTS-English/checkpoint.pth" in reason and "corpora/cmudict.zip" in reason
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert MeloTTS.unavailable(python=python) is None
    probe = json.loads(subprocess.run([python, str(WORKER), "--probe"], capture_output=True, text=True,
                                      check=True).stdout)
    assert probe == {"installed": True, "version": "0.1.2", "source": "MeloTTS-2374f46.tar.gz", "missing": [],
                     "checkpoint": "myshell-ai/MeloTTS-English@" + "0" * 40}


# --- scripts/install_melotts.sh -----------------------------------------------------------------------------------


def test_install_melotts_checks_the_archive_before_installing(tmp_path):
    """Usage, the archive's embedded commit id and its SHA256SUMS entry are checked before any venv is made."""
    import io
    import tarfile

    script = Path(__file__).resolve().parents[2] / "scripts" / "install_melotts.sh"

    def run(*args):
        return subprocess.run([str(script), *map(str, args)], capture_output=True, text=True, check=False)

    assert run().returncode == 2 and "usage" in run().stderr
    archive = tmp_path / "vendor" / "MeloTTS-other.tar.gz"
    archive.parent.mkdir()
    # A git archive names its commit in a pax global header's comment (what `git get-tar-commit-id` reads).
    with tarfile.open(archive, "w:gz", format=tarfile.PAX_FORMAT, pax_headers={"comment": "1" * 40}) as tar:
        member = tarfile.TarInfo("MeloTTS-1111111/setup.py")
        member.size = 1
        tar.addfile(member, io.BytesIO(b"\n"))
    done = run(tmp_path / "venv", archive)
    assert done.returncode == 1 and f"commit '{'1' * 40}', not MELOTTS_COMMIT" in done.stderr
    (archive.parent / "SHA256SUMS").write_text(f"{'0' * 64}  {archive.name}\n")
    done = run(tmp_path / "venv", archive)
    assert done.returncode == 1 and f"SHA256SUMS says {'0' * 64}" in done.stderr
    assert run(tmp_path / "venv", tmp_path / "absent.tar.gz").returncode == 1
    assert not (tmp_path / "venv").exists()
