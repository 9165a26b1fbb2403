"""Text to speech: text -> 16 kHz mono float32 waveform. Backends: `espeak-ng` (offline default) and `melotts`
(the paper's; run as a subprocess inside its own virtual environment, since it pins old transformers/librosa)."""

from __future__ import annotations

import abc
import json
import os
import subprocess
import tempfile
from math import gcd
from pathlib import Path
from typing import Any

import numpy as np

from artifact.speech.registry import Registry
from artifact.speech.base import SAMPLE_RATE, WordTime, check_audio, check_text

MELOTTS_PYTHON_ENV = "MELOTTS_PYTHON"
MELOTTS_INSTALL = (
    "python3.11 -m venv /opt/melotts && /opt/melotts/bin/pip install "
    "'git+https://github.com/myshell-ai/MeloTTS.git' && /opt/melotts/bin/python -m unidic download; "
    f"then export {MELOTTS_PYTHON_ENV}=/opt/melotts/bin/python"
)
WORKER = Path(__file__).resolve().parent / "melotts_worker.py"


def resample(audio: np.ndarray, rate: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """`audio` [samples] from `rate` to `target` Hz (polyphase, deterministic), float32."""
    from scipy.signal import resample_poly

    if rate == target:
        return np.asarray(audio, dtype=np.float32)
    g = gcd(int(rate), int(target))
    return resample_poly(np.asarray(audio, dtype=np.float64), target // g, rate // g).astype(np.float32)


class TTS(abc.ABC):
    """Text to speech. `settings()` names everything that changes the audio (it keys the cache)."""

    name: str = ""

    @abc.abstractmethod
    def settings(self) -> dict[str, Any]:
        """Backend name, version and options: everything that changes the output."""

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
        from artifact.speech import espeak

        self.voice, self.rate, self.pitch = voice, int(rate), int(pitch)
        self._espeak = espeak
        self._version = espeak.version()  # fails here, with the install command, when absent
        espeak.phonemes("a", voice)  # fails here on an unknown voice

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

    The worker (`melotts_worker.py`) loads `melo.api.TTS(language=...)` once and answers one JSON request per line
    with `tts_to_file(text, speaker_id, path, speed=...)`; its WAV is resampled to 16 kHz here.
    """

    name = "melotts"

    def __init__(self, python: str | None = None, language: str = "EN", speaker: str = "EN-US", speed: float = 1.0,
                 device: str = "auto", timeout: float = 600.0) -> None:
        python = python or os.environ.get(MELOTTS_PYTHON_ENV)
        if not python:
            raise RuntimeError(f"The 'melotts' backend needs MeloTTS in its own virtual environment. {MELOTTS_INSTALL}")
        if not Path(python).is_file():
            raise RuntimeError(f"{MELOTTS_PYTHON_ENV}={python} does not exist. {MELOTTS_INSTALL}")
        check = subprocess.run([python, "-c", "import melo.api"], capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"MeloTTS is not importable by {python} ({check.stderr.strip()[-300:]}). "
                               f"{MELOTTS_INSTALL}")
        self.python, self.language, self.speaker, self.speed = python, language, speaker, float(speed)
        self.device, self.timeout = device, timeout
        self._process: subprocess.Popen | None = None
        self._version = subprocess.run(
            [python, "-c", "import importlib.metadata as m; print(m.version('melotts'))"],
            capture_output=True, text=True).stdout.strip() or "unknown"

    def settings(self) -> dict[str, Any]:
        return {"backend": self.name, "version": self._version, "language": self.language, "speaker": self.speaker,
                "speed": self.speed, "sample_rate": SAMPLE_RATE}

    def _worker(self) -> subprocess.Popen:
        if self._process is None or self._process.poll() is not None:
            args = [self.python, str(WORKER), "--language", self.language, "--device", self.device]
            self._process = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        return self._process

    def _synthesize(self, text: str) -> np.ndarray:
        from scipy.io import wavfile

        with tempfile.TemporaryDirectory(prefix="melotts-") as folder:
            path = Path(folder) / "speech.wav"
            worker = self._worker()
            request = {"text": text, "speaker": self.speaker, "speed": self.speed, "path": str(path)}
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


TTS_BACKENDS: Registry[TTS] = Registry("text-to-speech")
TTS_BACKENDS.register("espeak-ng", "artifact.speech.tts:EspeakTTS")
TTS_BACKENDS.register("melotts", "artifact.speech.tts:MeloTTS")


def create_tts(name: str = "espeak-ng", **options: Any) -> TTS:
    """A text-to-speech backend by name ('espeak-ng', 'melotts')."""
    return TTS_BACKENDS.create(name, **options)
