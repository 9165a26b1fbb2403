"""Text to speech: text -> 16 kHz mono float32 waveform. Backends: `espeak-ng` (offline default) and `melotts`
(the paper's; run as a subprocess inside its own virtual environment, since it pins old transformers/librosa)."""

from __future__ import annotations

import abc
import hashlib
import json
import os
import subprocess
import tempfile
from math import gcd
from pathlib import Path
from typing import Any

import numpy as np

from artifact.core.fileio import sha256_file
from artifact.speech import espeak
from artifact.speech.base import SAMPLE_RATE, WordTime, check_audio, check_text
from artifact.speech.registry import Backend, Registry

MELOTTS_PYTHON_ENV = "MELOTTS_PYTHON"
MELOTTS_INSTALL = (
    "Install it with scripts/install_melotts.sh /opt/melotts (MeloTTS at MELOTTS_COMMIT in its own venv), "
    f"then export {MELOTTS_PYTHON_ENV}=/opt/melotts/bin/python; or run without it: `run_all.sh --front-end offline` "
    "(espeak-ng speech; `--front-end auto`, the default, falls back by itself and says so)"
)
WORKER = Path(__file__).resolve().parent / "melotts_worker.py"
PROBE_TIMEOUT = 120.0  # seconds for the worker's --probe (imports huggingface_hub in MeloTTS's venv: about 1 s)


def resample(audio: np.ndarray, rate: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """`audio` [samples] from `rate` to `target` Hz (polyphase, deterministic), float32."""
    from scipy.signal import resample_poly  # lazy: scipy

    if rate == target:
        return np.asarray(audio, dtype=np.float32)
    g = gcd(int(rate), int(target))
    return resample_poly(np.asarray(audio, dtype=np.float64), target // g, rate // g).astype(np.float32)


class TTS(Backend):
    """Text to speech. `settings()` names everything that changes the audio (it keys the cache)."""

    @abc.abstractmethod
    def _synthesize(self, text: str) -> np.ndarray:
        """[samples] float32 at 16 kHz."""

    def synthesize(self, text: str) -> np.ndarray:
        """Speak `text`: [samples] float32 mono at 16 kHz. Raises ValueError on empty text or silent output."""
        text = check_text(text)
        return check_audio(self._synthesize(text), f"speech synthesised for {text!r}")

    def synthesize_with_words(self, text: str) -> tuple[np.ndarray, list[WordTime] | None]:
        """`synthesize(text)` and the TTS's own word times in that same audio (None when it gives none)."""
        return self.synthesize(text), None


class EspeakTTS(TTS):
    """espeak-ng through its library (offline), every synthesis in a fresh child process (see `espeak`), so the
    audio of a text never depends on what was spoken before. `synthesize_with_words` gives the audio and espeak-ng's
    own word positions from one synthesis; `word_times` the same word times alone."""

    name = "espeak-ng"

    def __init__(self, voice: str = "en-us", rate: int = 175, pitch: int = 50) -> None:
        self.voice, self.rate, self.pitch = voice, int(rate), int(pitch)
        self._espeak = espeak
        self._version = espeak.version()  # fails here, with the install command, when absent
        espeak.phonemes("a", voice)  # fails here on an unknown voice

    @classmethod
    def unavailable(cls, **options: Any) -> str | None:
        if espeak.available():
            return None
        return f"espeak-ng's library (libespeak-ng) cannot be loaded. {espeak.INSTALL_HINT}"

    def settings(self) -> dict[str, Any]:
        return {"backend": self.name, "version": self._version, "voice": self.voice, "rate": self.rate,
                "pitch": self.pitch, "sample_rate": SAMPLE_RATE, "synthesis": self._espeak.ISOLATION}

    def utterance(self, text: str):
        """espeak-ng's raw output for `text` (22050 Hz audio and its word/phoneme events, one synthesis)."""
        return self._espeak.synthesize(check_text(text), self.voice, self.rate, self.pitch)

    def _synthesize(self, text: str) -> np.ndarray:
        utterance = self.utterance(text)
        return resample(utterance.audio, utterance.sample_rate)

    def synthesize_with_words(self, text: str) -> tuple[np.ndarray, list[WordTime]]:
        """The 16 kHz audio of `text` and espeak-ng's own word times (seconds) in it, from one synthesis."""
        text = check_text(text)
        utterance = self.utterance(text)
        audio = check_audio(resample(utterance.audio, utterance.sample_rate), f"speech synthesised for {text!r}")
        return audio, self._espeak.word_times(text, utterance)

    def word_times(self, text: str) -> list[WordTime]:
        """espeak-ng's own word times (seconds) in the full utterance of `text` (the audio `synthesize(text)` gives):
        the aligner's ground truth."""
        return self.synthesize_with_words(text)[1]


class MeloTTS(TTS):
    """MeloTTS (the paper's TTS), called as a subprocess in its own venv: `$MELOTTS_PYTHON` (or `python=`).

    The worker (`melotts_worker.py`) loads `melo.api.TTS(language, device, config_path, ckpt_path)` once and answers
    one JSON request per line with `tts_to_file(text, speaker_id, path, speed, sdp_ratio, noise_scale,
    noise_scale_w)`; its WAV (44.1 kHz for English) is resampled to 16 kHz here. MeloTTS samples noise at inference,
    so every request carries its own seed, `request_seed(seed, text)`, which the worker gives Python's, numpy's and
    torch's generators right before that synthesis: a text's audio depends only on the text and the settings, never
    on what was synthesised before it (order, sharding). `config_path`/`ckpt_path` (default: the hub's voice for
    `language`) select other weights; `sdp_ratio`, `noise_scale`, `noise_scale_w` are MeloTTS's own defaults.
    `device` is "cpu" by default, on every host: the audio (and so the units, the transcripts and the speech facts
    that pass the Known filter) must not depend on whether the machine has a GPU. It is part of `settings()`, so
    audio synthesised on another device gets other cache keys. "cuda" or "auto" (MeloTTS's choice) when asked.
    When everything MeloTTS downloads is already cached (the worker's `--probe` at construction), the worker runs
    with the hub offline, so it uses the cached snapshot that `settings()` records, not a newer revision.
    """

    name = "melotts"

    def __init__(self, python: str | None = None, language: str = "EN", speaker: str = "EN-US", speed: float = 1.0,
                 device: str = "cpu", seed: int = 0, sdp_ratio: float = 0.2, noise_scale: float = 0.6,
                 noise_scale_w: float = 0.8, config_path: str | None = None, ckpt_path: str | None = None,
                 timeout: float = 600.0) -> None:
        python = _melotts_python(python)
        probe = _melotts_probe(python, language, config_path, ckpt_path)
        if not probe["installed"]:
            raise RuntimeError(f"MeloTTS is not installed for {python} ({'; '.join(probe['missing'])}). "
                               f"{MELOTTS_INSTALL}")
        self.python, self.language, self.speaker, self.speed = python, language, speaker, float(speed)
        self.seed, self.sdp_ratio = int(seed), float(sdp_ratio)
        self.noise_scale, self.noise_scale_w = float(noise_scale), float(noise_scale_w)
        self.config_path, self.ckpt_path = config_path, ckpt_path
        self.device, self.timeout = device, timeout
        self._process: subprocess.Popen | None = None
        self._version = probe["version"]
        self._source = probe["source"]
        self._offline = not probe["missing"]
        if ckpt_path is not None and Path(ckpt_path).is_file():
            self._checkpoint = f"sha256:{sha256_file(Path(ckpt_path))}"
        else:  # the hub's voice: repository@snapshot when cached (it downloads on first use otherwise)
            self._checkpoint = probe["checkpoint"] or f"hub voice for {language} (not cached yet)"
        if config_path is not None and Path(config_path).is_file():
            self._config = f"sha256:{sha256_file(Path(config_path))}"
        else:
            self._config = "hub"

    @classmethod
    def unavailable(cls, python: str | None = None, language: str = "EN", config_path: str | None = None,
                    ckpt_path: str | None = None, **options: Any) -> str | None:
        """None when MeloTTS can synthesise offline now: `$MELOTTS_PYTHON` set and present, `melo` installed there,
        and every file MeloTTS would download (the voice, the BERT tokenizers it loads at import and the language's
        BERT model from the Hugging Face hub, nltk's tagger and cmudict for g2p_en, UniDic for MeCab) in its
        caches. Runs the worker's `--probe` (about a second); loads no model."""
        try:
            python = _melotts_python(python)
        except RuntimeError as exc:
            return str(exc)
        try:
            probe = _melotts_probe(python, language, config_path, ckpt_path)
        except RuntimeError as exc:
            return str(exc)
        if not probe["installed"]:
            return f"MeloTTS is not installed for {python} ({'; '.join(probe['missing'])}). {MELOTTS_INSTALL}"
        if probe["missing"]:
            return (f"MeloTTS ({language}) lacks files it would download: {'; '.join(probe['missing'])}. Fetch them "
                    f"once with network access, with the HF_HOME and NLTK_DATA of the run: {python} {WORKER} --fetch "
                    f"--language {language}")
        return None

    @staticmethod
    def request_seed(seed: int, text: str) -> int:
        """The seed of one synthesis: the first 4 bytes of sha256 of the JSON of [seed, text], as an int < 2**32."""
        payload = json.dumps([int(seed), text], ensure_ascii=False).encode("utf-8")
        return int.from_bytes(hashlib.sha256(payload).digest()[:4], "big")

    def settings(self) -> dict[str, Any]:
        return {"backend": self.name, "version": self._version, "source": self._source, "language": self.language,
                "speaker": self.speaker, "speed": self.speed, "seed": self.seed,
                "seeding": "per request: sha256([seed, text])[:4] -> random, numpy, torch",
                "sdp_ratio": self.sdp_ratio, "noise_scale": self.noise_scale, "noise_scale_w": self.noise_scale_w,
                "checkpoint": self._checkpoint, "config": self._config, "device": self.device,
                "sample_rate": SAMPLE_RATE}

    def _worker(self) -> subprocess.Popen:
        if self._process is None or self._process.poll() is not None:
            args = [self.python, str(WORKER), "--language", self.language, "--device", self.device]
            if self.config_path is not None:
                args += ["--config-path", str(self.config_path)]
            if self.ckpt_path is not None:
                args += ["--ckpt-path", str(self.ckpt_path)]
            env = dict(os.environ)
            if self._offline:  # all cached: use exactly the snapshot settings() names, never a newer hub revision
                env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
            self._process = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        return self._process

    def _synthesize(self, text: str) -> np.ndarray:
        from scipy.io import wavfile  # lazy: scipy

        with tempfile.TemporaryDirectory(prefix="melotts-") as folder:
            path = Path(folder) / "speech.wav"
            worker = self._worker()
            request = {"text": text, "speaker": self.speaker, "speed": self.speed, "path": str(path),
                       "seed": self.request_seed(self.seed, text), "sdp_ratio": self.sdp_ratio,
                       "noise_scale": self.noise_scale, "noise_scale_w": self.noise_scale_w}
            worker.stdin.write(json.dumps(request) + "\n")
            worker.stdin.flush()
            line = worker.stdout.readline()
            if not line:
                raise RuntimeError(f"The MeloTTS worker ({self.python}) exited; run it by hand to see why: "
                                   f"{self.python} {WORKER} --language {self.language}")
            reply = json.loads(line)
            if not reply.get("ok"):
                raise RuntimeError(f"MeloTTS failed on {text!r}: {reply.get('error')}")
            rate, audio = wavfile.read(path)
        if np.issubdtype(audio.dtype, np.integer):
            audio = audio.astype(np.float32) / float(np.iinfo(audio.dtype).max + 1)
        audio = audio.astype(np.float32)
        if audio.ndim == 2:
            audio = audio.mean(axis=1)
        return resample(audio, int(rate))

    def close(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.stdin.close()
            self._process.wait(timeout=30)
        self._process = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass


def _melotts_python(python: str | None) -> str:
    """MeloTTS's interpreter: `python`, else `$MELOTTS_PYTHON`; RuntimeError with the install command when unset
    or absent."""
    python = python or os.environ.get(MELOTTS_PYTHON_ENV)
    if not python:
        raise RuntimeError(f"The 'melotts' backend needs MeloTTS in its own virtual environment, found through "
                           f"${MELOTTS_PYTHON_ENV}, which is not set. {MELOTTS_INSTALL}")
    if not Path(python).is_file():
        raise RuntimeError(f"{MELOTTS_PYTHON_ENV}={python} does not exist. {MELOTTS_INSTALL}")
    return python


def _melotts_probe(python: str, language: str, config_path: str | None, ckpt_path: str | None) -> dict[str, Any]:
    """The worker's `--probe` answer: {"installed", "version", "source", "missing", "checkpoint"} (see
    melotts_worker.probe)."""
    args = [python, str(WORKER), "--probe", "--language", language]
    if config_path is not None:
        args += ["--config-path", str(config_path)]
    if ckpt_path is not None:
        args += ["--ckpt-path", str(ckpt_path)]
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=PROBE_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeError(f"Could not run MeloTTS's probe with {python} ({exc}). {MELOTTS_INSTALL}") from exc
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"MeloTTS's probe failed with {python} (exit {done.returncode}: "
                           f"{done.stderr.strip()[-300:]}). {MELOTTS_INSTALL}")
    return json.loads(lines[-1])


TTS_BACKENDS: Registry[TTS] = Registry("text-to-speech")
TTS_BACKENDS.register("espeak-ng", "artifact.speech.tts:EspeakTTS")
TTS_BACKENDS.register("melotts", "artifact.speech.tts:MeloTTS")


def create_tts(name: str = "espeak-ng", **options: Any) -> TTS:
    """A text-to-speech backend by name ('espeak-ng', 'melotts')."""
    return TTS_BACKENDS.create(name, **options)
