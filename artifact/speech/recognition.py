"""Recognition, the quality check of synthesised prompts: waveform -> transcript, scored by WER against the prompt.
Backends: `pocketsphinx` (offline, its bundled US English model) and `whisper-small` (the paper's; openai-whisper)."""

from __future__ import annotations

import abc
from typing import Any

import numpy as np

from artifact.speech.registry import Registry, require_module
from artifact.speech.base import SAMPLE_RATE, check_audio


class Recognizer(abc.ABC):
    """Speech recognition of 16 kHz mono audio. `settings()` keys the cache."""

    name: str = ""

    @abc.abstractmethod
    def settings(self) -> dict[str, Any]:
        """Backend name, version and options."""

    @abc.abstractmethod
    def _transcribe(self, audio: np.ndarray) -> str:
        """Transcript of [samples] float32 16 kHz audio."""

    def transcribe(self, audio: np.ndarray) -> str:
        """The transcript of `audio` ([samples] float32, 16 kHz). Raises ValueError on empty or silent audio."""
        return self._transcribe(check_audio(audio)).strip()


def to_pcm16(audio: np.ndarray) -> bytes:
    """[samples] float32 in [-1, 1] -> little-endian 16-bit PCM bytes."""
    return (np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


class PocketsphinxRecognizer(Recognizer):
    """pocketsphinx (PyPI) with its bundled US English acoustic model, dictionary and language model (offline)."""

    name = "pocketsphinx"

    def __init__(self) -> None:
        pocketsphinx = require_module("pocketsphinx", "pip install pocketsphinx", self.name)
        self._version = getattr(pocketsphinx, "__version__", None) or _dist_version("pocketsphinx")
        self._decoder = pocketsphinx.Decoder(samprate=SAMPLE_RATE, loglevel="FATAL")

    def settings(self) -> dict[str, Any]:
        return {"backend": self.name, "version": self._version, "model": "en-us (bundled)"}

    def _transcribe(self, audio: np.ndarray) -> str:
        decoder = self._decoder
        decoder.start_utt()
        decoder.process_raw(to_pcm16(audio), full_utt=True)
        decoder.end_utt()
        hypothesis = decoder.hyp()
        return hypothesis.hypstr if hypothesis is not None else ""


class WhisperRecognizer(Recognizer):
    """openai-whisper (`pip install openai-whisper`); the paper's quality check uses the `small` model.

    Uses the documented API: `whisper.load_model(name)` then `model.transcribe(audio, language=..., fp16=...)`,
    where `audio` is a float32 16 kHz array. Weights download on first construction (container only).
    """

    name = "whisper-small"

    def __init__(self, model: str = "small", language: str = "en", device: str | None = None) -> None:
        whisper = require_module("whisper", "pip install openai-whisper", self.name)
        import torch

        self.model_name, self.language = model, language
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self._model = whisper.load_model(model, device=self.device)
        self._version = _dist_version("openai-whisper")

    def settings(self) -> dict[str, Any]:
        return {"backend": self.name, "version": self._version, "model": self.model_name, "language": self.language,
                "decoding": "greedy, temperature 0"}

    def _transcribe(self, audio: np.ndarray) -> str:
        result = self._model.transcribe(audio.astype(np.float32), language=self.language, temperature=0.0,
                                        fp16=self.device != "cpu", condition_on_previous_text=False)
        return str(result["text"])


def _dist_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


RECOGNIZERS: Registry[Recognizer] = Registry("recognition")
RECOGNIZERS.register("pocketsphinx", "artifact.speech.recognition:PocketsphinxRecognizer")
RECOGNIZERS.register("whisper-small", "artifact.speech.recognition:WhisperRecognizer")


def create_recognizer(name: str = "pocketsphinx", **options: Any) -> Recognizer:
    """A recognition backend by name ('pocketsphinx', 'whisper-small')."""
    return RECOGNIZERS.create(name, **options)
