"""Word alignment: waveform + text -> start and end time (s) of each word, hence of the subject.
Backends: `pocketsphinx` (offline forced alignment, independent of the TTS's timing) and `mms-fa` (torchaudio's
MMS_FA CTC forced aligner, the paper's kind of aligner; weights download on first use, container only)."""

from __future__ import annotations

import abc
import re
from typing import Any, Sequence

import numpy as np

from artifact.speech.registry import Registry, require_module
from artifact.speech.recognition import _dist_version, to_pcm16
from artifact.speech.text import normalize_word
from artifact.speech.base import SAMPLE_RATE, WordTime, check_audio, check_text


class AlignmentError(RuntimeError):
    """The text could not be aligned to the audio."""


def text_words(text: str) -> list[tuple[int, int, str, str]]:
    """(char start, char end, word, normalised word) of every whitespace-separated word with something to say."""
    out = []
    for match in re.finditer(r"\S+", text):
        norm = normalize_word(match.group())
        if norm:
            out.append((match.start(), match.end(), match.group(), norm))
    return out


class Aligner(abc.ABC):
    """Forced alignment of a known text to 16 kHz audio. `settings()` keys the cache."""

    name: str = ""

    @abc.abstractmethod
    def settings(self) -> dict[str, Any]:
        """Backend name, version and options."""

    @abc.abstractmethod
    def _align(self, audio: np.ndarray, words: list[tuple[int, int, str, str]]) -> list[tuple[float, float]]:
        """(start, end) seconds per word, in order."""

    def align(self, audio: np.ndarray, text: str) -> list[WordTime]:
        """Times of each word of `text` in `audio` ([samples] float32 16 kHz); words without letters are skipped."""
        text = check_text(text)
        audio = check_audio(audio)
        words = text_words(text)
        if not words:
            raise ValueError(f"The text {text!r} has no words to align.")
        times = self._align(audio, words)
        if len(times) != len(words):
            raise AlignmentError(f"{self.name} returned {len(times)} word times for {len(words)} words of {text!r}.")
        return [WordTime(w, float(s), float(e), a, b) for (a, b, w, _), (s, e) in zip(words, times)]


class PocketsphinxAligner(Aligner):
    """pocketsphinx's forced alignment (`Decoder.set_align_text`) with its bundled US English model.

    Words missing from its CMU dictionary (mostly names) get a pronunciation from espeak-ng's letter-to-sound rules
    mapped to ARPAbet; the times themselves come only from pocketsphinx's acoustic model (100 frames per second).
    """

    name = "pocketsphinx"

    def __init__(self, voice: str = "en-us") -> None:
        pocketsphinx = require_module("pocketsphinx", "pip install pocketsphinx", self.name)
        self._version = _dist_version("pocketsphinx")
        self.voice = voice
        # bestpath=False: the lattice best-path pass sometimes ends an alignment early in silence; the Viterbi
        # path always covers every word. Wide beams: with the defaults, prompts with pauses (commas) fail to align.
        self._decoder = pocketsphinx.Decoder(samprate=SAMPLE_RATE, loglevel="FATAL", bestpath=False,
                                                  beam=1e-100, wbeam=1e-80, pbeam=1e-100)
        self._frame_rate = float(self._decoder.config["frate"])
        self._added: dict[str, str] = {}

    def settings(self) -> dict[str, Any]:
        return {"backend": self.name, "version": self._version, "model": "en-us (bundled)", "bestpath": False, "beams": "1e-100/1e-80/1e-100",
                "oov_pronunciations": f"espeak-ng letter-to-sound ({self.voice}) -> ARPAbet"}

    def _pronounce(self, word: str) -> None:
        if self._decoder.lookup_word(word) is not None:
            return
        from artifact.speech.espeak import arpabet

        phones = arpabet(word, self.voice)
        if not phones:
            raise AlignmentError(f"No pronunciation for {word!r}: it is not in pocketsphinx's dictionary and "
                                 "espeak-ng's letter-to-sound rules gave no mappable phoneme.")
        self._decoder.add_word(word, phones, True)
        self._added[word] = phones

    def _align(self, audio: np.ndarray, words: list[tuple[int, int, str, str]]) -> list[tuple[float, float]]:
        for *_, norm in words:
            self._pronounce(norm)
        decoder = self._decoder
        decoder.set_align_text(" ".join(norm for *_, norm in words))
        decoder.start_utt()
        decoder.process_raw(to_pcm16(audio), full_utt=True)
        decoder.end_utt()
        found = decoder.seg() if decoder.hyp() is not None else None
        if found is None:
            raise AlignmentError(f"pocketsphinx found no alignment of {len(words)} words; the audio may not "
                                 "contain the text.")
        segments = [s for s in found if not (s.word.startswith("<") or s.word.startswith("["))]
        if len(segments) != len(words):
            raise AlignmentError(f"pocketsphinx aligned {len(segments)} of {len(words)} words; the audio may not "
                                 "contain the text.")
        return [(s.start_frame / self._frame_rate, (s.end_frame + 1) / self._frame_rate) for s in segments]


class MMSFAAligner(Aligner):
    """CTC forced alignment with torchaudio's `MMS_FA` bundle (as the torchaudio forced-alignment tutorial):
    emission = bundle.get_model()(waveform), token spans = bundle.get_aligner()(emission[0],
    bundle.get_tokenizer()(words)); frame -> seconds by the waveform/emission length ratio.

    `model` may be passed (any module mapping [1, samples] to ([1, frames, labels], _)); by default the bundle's
    weights are loaded, which downloads them once (container only).
    """

    name = "mms-fa"

    def __init__(self, model: Any = None, device: str | None = None) -> None:
        torchaudio = require_module("torchaudio", "pip install torchaudio", self.name)
        import torch

        self._torch = torch
        self._bundle = torchaudio.pipelines.MMS_FA
        if self._bundle.sample_rate != SAMPLE_RATE:
            raise AlignmentError(f"MMS_FA expects {self._bundle.sample_rate} Hz audio, not {SAMPLE_RATE}.")
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if model is None:
            try:
                model = self._bundle.get_model(with_star=False)
            except Exception as exc:
                raise RuntimeError(f"Could not load the MMS_FA weights ({exc}); they download once from PyTorch's "
                                   "servers into the torch hub cache, so this needs network access.") from exc
        self._model = model.to(self.device).eval() if hasattr(model, "to") else model
        self._tokenizer = self._bundle.get_tokenizer()
        self._aligner = self._bundle.get_aligner()
        self._version = _dist_version("torchaudio")

    def settings(self) -> dict[str, Any]:
        return {"backend": self.name, "version": self._version, "bundle": "MMS_FA", "star": False}

    def _align(self, audio: np.ndarray, words: list[tuple[int, int, str, str]]) -> list[tuple[float, float]]:
        torch = self._torch
        dictionary = self._bundle.get_dict(star=None)
        # MMS_FA's alphabet is romanised lowercase letters plus the apostrophe: drop anything else (digits too).
        transcript = ["".join(c for c in norm if c in dictionary) for *_, norm in words]
        missing = [w for (*_, w, _), t in zip(words, transcript) if not t]
        if missing:
            raise AlignmentError(f"MMS_FA cannot align words without letters: {missing}. Spell numbers out.")
        waveform = torch.from_numpy(audio)[None].to(self.device)
        with torch.inference_mode():
            emission, _ = self._model(waveform)
        token_spans = self._aligner(emission[0], self._tokenizer(transcript))
        ratio = waveform.size(1) / emission.size(1) / SAMPLE_RATE  # seconds per emission frame
        return [(spans[0].start * ratio, spans[-1].end * ratio) for spans in token_spans]


ALIGNERS: Registry[Aligner] = Registry("alignment")
ALIGNERS.register("pocketsphinx", "artifact.speech.alignment:PocketsphinxAligner")
ALIGNERS.register("mms-fa", "artifact.speech.alignment:MMSFAAligner")


def create_aligner(name: str = "pocketsphinx", **options: Any) -> Aligner:
    """An alignment backend by name ('pocketsphinx', 'mms-fa')."""
    return ALIGNERS.create(name, **options)


def subject_time_span(words: Sequence[WordTime], text: str, subject: str) -> tuple[float, float]:
    """(start, end) seconds of `subject` in the aligned `words` of `text`: from the first to the last word that
    overlaps the subject's characters. Raises ValueError when the subject is not in the text."""
    if not subject or not subject.strip():
        raise ValueError("The subject is empty: pass the subject as it appears in the prompt.")
    begin = text.find(subject)
    if begin < 0:
        raise ValueError(f"Subject {subject!r} does not occur in {text!r}; it must appear verbatim.")
    end = begin + len(subject)
    hits = [w for w in words if w.char_start < end and w.char_end > begin]
    if not hits:
        raise ValueError(f"No aligned word covers subject {subject!r} in {text!r}.")
    return hits[0].start, hits[-1].end


def boundary_errors(truth: Sequence[WordTime], aligned: Sequence[WordTime]) -> list[float]:
    """Absolute word-boundary errors (s) of `aligned` against `truth` (words matched by character offset).

    Every word start in `truth` counts; a word end counts only when the next word of `aligned` is also in `truth`
    (espeak-ng speaks some function words fused with the previous one, e.g. 'in the', and gives them no own event).
    """
    by_char = {w.char_start: w for w in aligned}
    truth_chars = {w.char_start for w in truth}
    order = [w.char_start for w in aligned]
    errors: list[float] = []
    for word in truth:
        other = by_char.get(word.char_start)
        if other is None:
            continue
        errors.append(abs(word.start - other.start))
        index = order.index(word.char_start)
        if index + 1 == len(order) or order[index + 1] in truth_chars:
            errors.append(abs(word.end - other.end))
    return errors
