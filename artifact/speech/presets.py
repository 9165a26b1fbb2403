"""The speech front ends a run can choose by name: the paper's (MeloTTS, Whisper-small, MMS_FA) or the offline one
(espeak-ng, no recognition pass, pocketsphinx alignment), with the unit tokenizer each model reads.

SpiritLM reads its own HuBERT units whatever the front end; the embedded speech-text model was trained on the
offline front end's k-means log-mel units of espeak-ng speech, so it takes the offline front end only. With `auto`,
each paper stage whose backend cannot run here (no weights, no MeloTTS environment) falls back to the offline one,
and one banner line says which and why; `paper` refuses to fall back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

FRONT_END_CHOICES: tuple[str, ...] = ("auto", "paper", "offline")
STAGES: tuple[str, ...] = ("tts", "recognizer", "aligner")
OFFLINE_STAGES: dict[str, str] = {"tts": "espeak-ng", "recognizer": "none", "aligner": "pocketsphinx"}
PAPER_STAGES: dict[str, str] = {"tts": "melotts", "recognizer": "whisper-small", "aligner": "mms-fa"}
UNIT_TOKENIZERS: dict[str, str] = {"embedded": "kmeans-logmel", "spiritlm": "spiritlm"}

# (stage, backend name) -> None when the backend can run here, else why not and the fix.
Probe = Callable[[str, str], "str | None"]


def registry_probe(stage: str, name: str) -> str | None:
    """Ask the stage's backend registry whether backend `name` can run here without downloading anything."""
    from artifact.speech.alignment import ALIGNERS
    from artifact.speech.recognition import RECOGNIZERS
    from artifact.speech.tts import TTS_BACKENDS

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
    """The offline front end's `FrontEndConfig` fields for `model` ('embedded' or 'spiritlm')."""
    return {**OFFLINE_STAGES, "unit_tokenizer": UNIT_TOKENIZERS[model], "validate_alignment": False}


def choose_front_end(model: str, requested: str = "auto", probe: Probe = registry_probe) -> FrontEndChoice:
    """The front end of a run of `model` ('embedded' or 'spiritlm') for `requested` ('auto', 'paper', 'offline')."""
    if model not in UNIT_TOKENIZERS:
        raise FrontEndChoiceError(f"No front end for model {model!r}; expected one of {', '.join(UNIT_TOKENIZERS)}.")
    if requested not in FRONT_END_CHOICES:
        raise FrontEndChoiceError(f"--front-end must be one of {', '.join(FRONT_END_CHOICES)}; got {requested!r}.")
    offline = offline_config(model)
    if model == "embedded":
        if requested == "paper":
            raise FrontEndChoiceError(
                "--front-end paper needs SpiritLM: the embedded speech-text model was trained on the offline front "
                "end's units (k-means log-mel of espeak-ng speech). Use --front-end offline (or auto) with "
                "--model embedded, or --model spiritlm.")
        return FrontEndChoice(requested, offline, {}, "front end: offline (espeak-ng, pocketsphinx alignment, "
                                                       "k-means log-mel units), as the embedded speech model was trained")
    if requested == "offline":
        return FrontEndChoice(requested, offline, {}, "front end: offline (espeak-ng, no recognition pass, pocketsphinx "
                                                      "alignment) with SpiritLM's HuBERT units, as asked")
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
        banner = "front end: the paper's (MeloTTS, Whisper-small, MMS_FA) with SpiritLM's HuBERT units"
    else:
        banner = ("front end: " + ", ".join(f"{PAPER_STAGES[s]} -> {OFFLINE_STAGES[s]}" for s in fallbacks)
                  + " (paper backends without weights here: "
                  + "; ".join(f"{PAPER_STAGES[s]}: {reason}" for s, reason in fallbacks.items())
                  + "); SpiritLM's HuBERT units. --front-end paper refuses to fall back.")
    return FrontEndChoice(requested, config, fallbacks, banner)
