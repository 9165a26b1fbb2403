"""Recognition, the quality check of synthesised prompts: waveform -> transcript, scored by WER against the prompt.
Backends: `pocketsphinx` (offline, its bundled US English model) and `whisper-small` (the paper's; openai-whisper)."""

from __future__ import annotations

import abc
import dataclasses
import hashlib
import os
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

from artifact.core.fileio import sha256_file
from artifact.speech.base import SAMPLE_RATE, check_audio
from artifact.speech.registry import Backend, Registry, module_missing, require_module


class Recognizer(Backend):
    """Speech recognition of 16 kHz mono audio. `settings()` keys the cache."""

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
        self._version = getattr(pocketsphinx, "__version__", None) or dist_version("pocketsphinx")
        self._decoder = pocketsphinx.Decoder(samprate=SAMPLE_RATE, loglevel="FATAL")

    @classmethod
    def unavailable(cls, **options: Any) -> str | None:
        return module_missing("pocketsphinx", "pip install pocketsphinx", cls.name)

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

    Uses the documented API: `whisper.load_model(name, device, download_root)` then `model.transcribe(audio,
    language=..., temperature=0.0, fp16=...)`, where `audio` is a float32 16 kHz array: greedy decoding, no
    temperature fallback, no conditioning on earlier windows. `model` is a model name (`small`), a checkpoint in
    Whisper's own format (a .pt file of {"dims", "model_state_dict"}) or a `whisper.model.Whisper` instance.
    Named weights are read from `download_root` (default: `$ARTIFACT_WHISPER_DIR` when set, else Whisper's own
    ~/.cache/whisper) and download there once when absent (network needed); the tokenizer and mel filters ship
    with the package.
    """

    name = "whisper-small"

    def __init__(self, model: Any = "small", language: str = "en", device: str | None = None,
                 download_root: str | None = None) -> None:
        whisper = require_module("whisper", "pip install openai-whisper", self.name)
        import torch  # lazy: torch

        self.language = language
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.download_root = whisper_download_root(download_root)
        self._version = dist_version("openai-whisper")
        if isinstance(model, torch.nn.Module):
            self.model_name = "given"
            self._weights = f"state_dict sha256:{state_dict_sha256(model)}"
            self._model = model.to(self.device).eval()
        else:
            self.model_name = str(model)
            if self.model_name in whisper._MODELS:  # the sha256 of the file is part of its download URL
                self._weights = f"sha256:{whisper._MODELS[self.model_name].split('/')[-2]}"
            elif Path(self.model_name).is_file():
                self._weights = f"sha256:{sha256_file(Path(self.model_name))}"
                self.model_name = "checkpoint file"  # where it lies does not change the transcripts
            else:
                raise ValueError(f"Unknown Whisper model {self.model_name!r}: pass a name "
                                 f"({', '.join(whisper.available_models())}) or a checkpoint file.")
            try:
                self._model = whisper.load_model(str(model), device=self.device, download_root=self.download_root)
            except (OSError, RuntimeError) as exc:  # no network for the download, a damaged file
                reason = self.unavailable(model=model, download_root=download_root) or ""
                raise RuntimeError(f"Could not load Whisper {str(model)!r} ({exc}). {reason}".strip()) from exc
        self._dims = dataclasses.asdict(self._model.dims)

    @classmethod
    def unavailable(cls, model: Any = "small", download_root: str | None = None, **options: Any) -> str | None:
        """None when the weights of `model` are on disk (in `download_root`, see the class) or `model` is a module
        or an existing checkpoint file; else where they were looked for and how to get them."""
        missing = module_missing("whisper", "pip install openai-whisper", cls.name)
        if missing or not isinstance(model, str):
            return missing
        if Path(model).is_file():
            return None
        import whisper  # lazy: optional whisper

        if model not in whisper._MODELS:
            return (f"Unknown Whisper model {model!r}: pass a name ({', '.join(whisper.available_models())}) or a "
                    "checkpoint file.")
        root = whisper_download_root(download_root) or _whisper_default_root()
        filename = whisper._MODELS[model].split("/")[-1]
        if (Path(root) / filename).is_file():
            return None
        return (f"Whisper {model!r} weights not in {root} ({filename}). Fetch them with `python "
                f"scripts/fetch_weights.py --root DIR` (the container build does) and set "
                f"{WHISPER_DIR_ENV}=DIR/whisper, or run once with network access (they download there).")

    def settings(self) -> dict[str, Any]:
        return {"backend": self.name, "version": self._version, "model": self.model_name, "weights": self._weights,
                "dims": self._dims, "language": self.language, "decoding": "greedy, temperature 0"}

    def _transcribe(self, audio: np.ndarray) -> str:
        result = self._model.transcribe(audio.astype(np.float32), language=self.language, temperature=0.0,
                                        fp16=self.device != "cpu", condition_on_previous_text=False)
        return str(result["text"])


WHISPER_DIR_ENV = "ARTIFACT_WHISPER_DIR"


def whisper_download_root(download_root: str | None = None) -> str | None:
    """Where Whisper's named weights are read (and downloaded): `download_root`, else `$ARTIFACT_WHISPER_DIR`, else
    None (Whisper's own default, see `_whisper_default_root`)."""
    return download_root or os.environ.get(WHISPER_DIR_ENV) or None


def _whisper_default_root() -> str:
    """Whisper's own default download folder ($XDG_CACHE_HOME or ~/.cache, then whisper), as `load_model` has it."""
    return os.path.join(os.getenv("XDG_CACHE_HOME", os.path.join(os.path.expanduser("~"), ".cache")), "whisper")


def state_dict_sha256(module: Any) -> str:
    """sha256 over the names, shapes, dtypes and bytes of `module`'s state dict: identifies given weights in
    `settings()`, so two different models never share cached outputs."""
    import torch  # lazy: torch

    digest = hashlib.sha256()
    for key, tensor in module.state_dict().items():
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{key}:{tuple(tensor.shape)}:{tensor.dtype};".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def dist_version(name: str) -> str:
    """The installed version of distribution `name` (recorded in the speech stages' settings), or "unknown"."""
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
