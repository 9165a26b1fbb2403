"""The speech front end of one fact: speak the prompt, check it by recognition, align its words, tokenize it into
speech units and locate the subject's speech tokens. Every stage output is cached by content (`SpeechCache`).

Also which front end a run uses (`choose_front_end`): the paper's (MeloTTS, Whisper-small, MMS_FA), the offline one
(espeak-ng, no recognition pass, pocketsphinx alignment), or `auto`, with the units each model reads (its
`unit_tokenizer` in `artifact.core.speechtext`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from artifact.core.jsonable import check_known_keys
from artifact.core.speechtext import UnknownModelError, speech_text_model
from artifact.speech.alignment import ALIGNERS, Aligner, boundary_errors, create_aligner, subject_time_span
from artifact.speech.base import SAMPLE_RATE, SpeechUnits, WordTime, check_text
from artifact.speech.cache import SpeechCache, content_key
from artifact.speech.recognition import RECOGNIZERS, Recognizer, create_recognizer
from artifact.speech.text import word_error_rate
from artifact.speech.tts import TTS, TTS_BACKENDS, EspeakTTS, create_tts
from artifact.speech.units import UnitTokenizer, create_unit_tokenizer

NO_RECOGNIZER = "none"


FRONT_END_CHOICES: tuple[str, ...] = ("auto", "paper", "offline")
STAGES: tuple[str, ...] = ("tts", "recognizer", "aligner")
OFFLINE_STAGES: dict[str, str] = {"tts": "espeak-ng", "recognizer": NO_RECOGNIZER, "aligner": "pocketsphinx"}
PAPER_STAGES: dict[str, str] = {"tts": "melotts", "recognizer": "whisper-small", "aligner": "mms-fa"}


@dataclass
class FrontEndConfig:
    """Backends and options of the speech front end. The defaults are the offline front end of the S->T arm
    (`FrontEndConfig.offline()`): espeak-ng, no recognition pass, pocketsphinx alignment, k-means units."""

    tts: str = "espeak-ng"  # 'espeak-ng' (offline) or 'melotts' (paper; needs $MELOTTS_PYTHON)
    recognizer: str = NO_RECOGNIZER  # 'none' (skip the WER), 'pocketsphinx' (offline) or 'whisper-small' (paper)
    aligner: str = "pocketsphinx"  # 'pocketsphinx' (offline) or 'mms-fa' (torchaudio CTC; downloads weights)
    unit_tokenizer: str = "kmeans-logmel"  # 'kmeans-logmel' (offline stand-in) or 'spiritlm' (HuBERT; container)
    tts_options: dict[str, Any] = field(default_factory=dict)  # keyword arguments of the TTS backend
    max_wer: float | None = None  # drop prompts whose WER exceeds this (off by default: the paper states no rule)
    validate_alignment: bool = False  # with espeak-ng: score the aligner against espeak-ng's own word times
    cache: bool = True  # reuse and store stage outputs under cache_root()/speech

    @classmethod
    def offline(cls, model: str = "embedded") -> "FrontEndConfig":
        """The offline front end with the units `model` (a registered speech-text model) reads."""
        return cls(**offline_config(model))

    def __post_init__(self) -> None:
        for name in ("tts", "recognizer", "aligner", "unit_tokenizer"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"FrontEndConfig.{name} must be a backend name; got {getattr(self, name)!r}.")
        if self.max_wer is not None:
            if not 0.0 <= self.max_wer:
                raise ValueError(f"max_wer must be >= 0 (a WER, e.g. 0.5); got {self.max_wer}.")
            if self.recognizer == NO_RECOGNIZER:
                raise ValueError("max_wer needs a recognizer; set recognizer to 'pocketsphinx' or 'whisper-small'.")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "FrontEndConfig":
        """Inverse of `to_dict`; an unknown key is an error."""
        check_known_keys(cls, data, "FrontEndConfig fields")
        return cls(**data)


@dataclass
class SpokenFact:
    """One prompt through the front end. Times in seconds; token ranges [b, e) over the deduplicated speech tokens."""

    text: str
    subject: str
    audio: np.ndarray  # [samples] float32, 16 kHz
    transcript: str | None
    wer: float | None
    words: list[WordTime]
    subject_time: tuple[float, float]
    units: SpeechUnits
    subject_tokens: tuple[int, int]
    alignment_errors: list[float] | None  # |aligned - espeak-ng| per word boundary (s), when validated
    kept: bool  # False when dropped by max_wer
    audio_key: str

    @property
    def duration(self) -> float:
        return len(self.audio) / SAMPLE_RATE

    def summary(self) -> dict[str, Any]:
        """One table row (no arrays)."""
        b, e = self.subject_tokens
        errors = self.alignment_errors
        return {
            "duration_s": round(self.duration, 3), "wer": None if self.wer is None else round(self.wer, 4),
            "transcript": self.transcript, "subject_start_s": round(self.subject_time[0], 3),
            "subject_end_s": round(self.subject_time[1], 3), "subject_token_start": b, "subject_token_end": e,
            "subject_tokens": e - b, "speech_tokens": len(self.units.tokens), "frames": len(self.units.frames),
            "align_err_median_ms": None if not errors else round(1000 * float(np.median(errors)), 1),
            "kept": self.kept,
        }


class SpeechFrontEnd:
    """The four backends plus the cache; `process(prompt, subject)` runs one fact."""

    def __init__(self, config: FrontEndConfig | None = None, cache_dir: Path | None = None) -> None:
        self.config = config = config or FrontEndConfig()
        self.tts: TTS = create_tts(config.tts, **config.tts_options)
        self.recognizer: Recognizer | None = (
            None if config.recognizer == NO_RECOGNIZER else create_recognizer(config.recognizer))
        self.aligner: Aligner = create_aligner(config.aligner)
        self.unit_tokenizer: UnitTokenizer = create_unit_tokenizer(config.unit_tokenizer)
        if config.cache and cache_dir is None:
            from artifact.models.loading import cache_root  # lazy: torch

            cache_dir = cache_root() / "speech"
        self.cache = SpeechCache(cache_dir if config.cache else None)

    def settings(self) -> dict[str, Any]:
        """Every backend's settings (recorded beside results)."""
        return {"config": self.config.to_dict(), "tts": self.tts.settings(),
                "recognizer": self.recognizer.settings() if self.recognizer else None,
                "aligner": self.aligner.settings(), "unit_tokenizer": self.unit_tokenizer.settings()}

    def process(self, text: str, subject: str) -> SpokenFact:
        """Speak `text`, score it, align it, tokenize it and locate `subject` in time and in speech tokens."""
        text = check_text(text)
        if not subject or not subject.strip() or subject not in text:
            raise ValueError(f"Subject {subject!r} does not occur verbatim in prompt {text!r}.")
        cache = self.cache
        audio_key = content_key("audio", text=text, tts=self.tts.settings())
        spoken: dict[str, Any] = {}

        def speak() -> np.ndarray:  # the audio, keeping the TTS's own word times of this same synthesis
            audio, spoken["words"] = self.tts.synthesize_with_words(text)
            return audio

        audio = cache.array("audio", audio_key, speak).astype(np.float32)
        transcript = wer = None
        if self.recognizer is not None:
            key = content_key("transcript", audio=audio_key, recognizer=self.recognizer.settings())
            transcript = cache.json("transcript", key, lambda: self.recognizer.transcribe(audio))
            wer = word_error_rate(text, transcript)
        key = content_key("alignment", audio=audio_key, text=text, aligner=self.aligner.settings())
        words = [WordTime.from_dict(w) for w in
                 cache.json("alignment", key, lambda: [w.to_dict() for w in self.aligner.align(audio, text)])]
        key = content_key("units", audio=audio_key, tokenizer=self.unit_tokenizer.settings())
        units = SpeechUnits.from_dict(cache.json("units", key, lambda: self.unit_tokenizer.encode(audio).to_dict()))
        subject_time = subject_time_span(words, text, subject)
        subject_tokens = units.tokens_overlapping(*subject_time)
        errors = None
        if self.config.validate_alignment and isinstance(self.tts, EspeakTTS):
            key = content_key("espeak-words", audio=audio_key)
            truth = [WordTime.from_dict(w) for w in cache.json(
                "espeak-words", key, lambda: [w.to_dict() for w in self._tts_words(text, audio, spoken)])]
            errors = boundary_errors(truth, words)
        kept = self.config.max_wer is None or (wer is not None and wer <= self.config.max_wer)
        return SpokenFact(text, subject, audio, transcript, wer, words, subject_time, units, subject_tokens, errors,
                          kept, audio_key)

    def _tts_words(self, text: str, audio: np.ndarray, spoken: dict[str, Any]) -> list[WordTime]:
        """The TTS's own word times in `audio`: those of the synthesis that made it, or, when the audio came from the
        cache, of a new synthesis checked to give bitwise the same audio (espeak-ng synthesis is history-free)."""
        if spoken.get("words") is not None:
            return spoken["words"]
        again, words = self.tts.synthesize_with_words(text)
        if words is None:
            raise RuntimeError(f"The {self.tts.name} backend gives no word times of its own.")
        if not np.array_equal(np.asarray(again, dtype=np.float32), audio):
            raise RuntimeError(f"A new synthesis of {text!r} differs from the cached audio, so its word times would "
                               f"not belong to that audio; clear the speech cache ({self.cache.root}).")
        return words


# ---------------------------------------------------------------------------------- choosing a front end
# A model reads its own units (its spec's `unit_tokenizer`: SpiritLM its HuBERT units) whatever the front end; a
# model whose spec says `offline_only` (the embedded speech-text model) takes the offline front end only. With
# `auto`, each paper stage whose backend cannot run here (no weights, no MeloTTS environment) falls back to the
# offline one, and one banner line says which and why; `paper` refuses to fall back.

# (stage, backend name) -> None when the backend can run here, else why not and the fix.
Probe = Callable[[str, str], "str | None"]


def registry_probe(stage: str, name: str) -> str | None:
    """Ask the stage's backend registry whether backend `name` can run here without downloading anything."""
    registry = {"tts": TTS_BACKENDS, "recognizer": RECOGNIZERS, "aligner": ALIGNERS}[stage]
    return registry.unavailable(name)


class FrontEndChoiceError(ValueError):
    """A front end that cannot be used for this model, or paper backends that cannot run here."""


@dataclass(frozen=True)
class FrontEndChoice:
    """The resolved front end of a run: `FrontEndConfig` fields, what fell back and why, and a one-line banner."""

    requested: str  # 'auto', 'paper' or 'offline'
    config: dict[str, Any]  # FrontEndConfig fields
    fallbacks: dict[str, str] = field(default_factory=dict)  # stage -> why its paper backend was not used
    banner: str = ""


def offline_config(model: str) -> dict[str, Any]:
    """The offline front end's `FrontEndConfig` fields for `model` (a registered speech-text model)."""
    return {**OFFLINE_STAGES, "unit_tokenizer": speech_text_model(model).unit_tokenizer, "validate_alignment": False}


def choose_front_end(model: str, requested: str = "auto", probe: Probe = registry_probe) -> FrontEndChoice:
    """The front end of a run of `model` (a registered speech-text model: 'embedded', 'spiritlm', ...) for
    `requested` ('auto', 'paper', 'offline')."""
    try:
        spec = speech_text_model(model)
    except UnknownModelError as error:
        raise FrontEndChoiceError(f"No front end for model {model!r}: {error}") from None
    if requested not in FRONT_END_CHOICES:
        raise FrontEndChoiceError(f"--front-end must be one of {', '.join(FRONT_END_CHOICES)}; got {requested!r}.")
    offline = offline_config(model)
    if spec.offline_only is not None:
        if requested == "paper":
            raise FrontEndChoiceError(spec.offline_only)
        return FrontEndChoice(requested, offline, {}, spec.offline_banner)
    if requested == "offline":
        return FrontEndChoice(requested, offline, {}, spec.offline_banner)
    config = dict(offline)
    fallbacks: dict[str, str] = {}
    for stage in STAGES:
        reason = probe(stage, PAPER_STAGES[stage])
        if reason is None:
            config[stage] = PAPER_STAGES[stage]
        else:
            fallbacks[stage] = reason
    if fallbacks and requested == "paper":
        raise FrontEndChoiceError(
            "--front-end paper: the paper's backends cannot all run here: "
            + "; ".join(f"{PAPER_STAGES[s]} ({reason})" for s, reason in fallbacks.items())
            + ". Install them (see REPRODUCE.md), or run with --front-end offline (espeak-ng, pocketsphinx) or auto.")
    if not fallbacks:
        banner = f"front end: the paper's (MeloTTS, Whisper-small, MMS_FA) with {spec.units}"
    else:
        banner = ("front end: " + ", ".join(f"{PAPER_STAGES[s]} -> {OFFLINE_STAGES[s]}" for s in fallbacks)
                  + " (paper backends without weights here: "
                  + "; ".join(f"{PAPER_STAGES[s]}: {reason}" for s, reason in fallbacks.items())
                  + f"); {spec.units}. --front-end paper refuses to fall back.")
    return FrontEndChoice(requested, config, fallbacks, banner)
