"""Word alignment: waveform + text -> start and end time (s) of each word, hence of the subject.
Backends: `pocketsphinx` (offline forced alignment, independent of the TTS's timing) and `mms-fa` (torchaudio's
MMS_FA CTC forced aligner, the paper's kind of aligner; weights download on first use, container only)."""

from __future__ import annotations

import abc
import re
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from artifact.speech.base import SAMPLE_RATE, WordTime, check_audio, check_text
from artifact.speech.espeak import arpabet
from artifact.speech.recognition import dist_version, state_dict_sha256, to_pcm16
from artifact.speech.registry import Backend, Registry, module_missing, require_module
from artifact.speech.text import normalize_word


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


class Aligner(Backend):
    """Forced alignment of a known text to 16 kHz audio. `settings()` keys the cache."""

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

    Every alignment runs in a fresh decoder whose dictionary holds only the prompt's words, so a result depends on
    the audio and text alone, never on what was aligned before (a reused decoder keeps words added for earlier
    prompts and its running cepstral mean). Each word gets all of its CMU dictionary pronunciations plus espeak-ng's
    letter-to-sound reading of the word as written (mapped to ARPAbet) as an alternative, so names, foreign words,
    numbers and abbreviations ('U.S.', 'St.') have the pronunciation the audio most likely holds; the decoder picks
    the best-matching one. The times themselves come only from pocketsphinx's acoustic model (100 frames per second).

    The audio is decoded in streaming mode (`process_raw(full_utt=False)`): pocketsphinx 5.1's full-utterance mode
    loses the word path on espeak-ng audio ("Final result does not match the grammar") for about 1 prompt in 10
    that streaming mode aligns. If an alignment still fails, it is retried once with wider beams.
    """

    name = "pocketsphinx"
    BEAMS = {"beam": 1e-100, "wbeam": 1e-80, "pbeam": 1e-100}
    RETRY_BEAMS = {"beam": 1e-200, "wbeam": 1e-200, "pbeam": 1e-200}

    def __init__(self, voice: str = "en-us") -> None:
        self._pocketsphinx = pocketsphinx = require_module("pocketsphinx", "pip install pocketsphinx", self.name)
        self._version = dist_version("pocketsphinx")
        self.voice = voice
        config = pocketsphinx.Config()
        self._model, dictionary = config["hmm"], config["dict"]
        self._frame_rate = float(config["frate"])
        self._dictionary = _read_dictionary(dictionary)

    @classmethod
    def unavailable(cls, **options: Any) -> str | None:
        return module_missing("pocketsphinx", "pip install pocketsphinx", cls.name)

    def settings(self) -> dict[str, Any]:
        return {"backend": self.name, "version": self._version, "model": "en-us (bundled)", "bestpath": False,
                "beams": "1e-100/1e-80/1e-100", "retry_beams": "1e-200/1e-200/1e-200", "mode": "streaming",
                "decoder": "fresh per alignment, dictionary of the prompt's words",
                "pronunciations": f"CMU dictionary (all) + espeak-ng letter-to-sound ({self.voice}) -> ARPAbet"}

    def pronunciations(self, word: str, norm: str) -> list[str]:
        """ARPAbet pronunciations of the text word `word` (normalised: `norm`): the CMU dictionary's, then
        espeak-ng's reading of `word` as written, when it differs."""
        found = list(self._dictionary.get(norm, ()))
        spoken = arpabet(word, self.voice) or arpabet(norm, self.voice)
        if spoken and spoken not in found:
            found.append(spoken)
        if not found:
            raise AlignmentError(f"No pronunciation for {word!r}: it is not in pocketsphinx's dictionary and "
                                 "espeak-ng's letter-to-sound rules gave no mappable phoneme.")
        return found

    def _decode(self, dictionary: str, norms: list[str], pcm: bytes, beams: dict[str, float]):
        decoder = self._pocketsphinx.Decoder(hmm=self._model, dict=dictionary, lm=None, samprate=SAMPLE_RATE,
                                             loglevel="FATAL", bestpath=False, **beams)
        decoder.set_align_text(" ".join(norms))
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=False)
        decoder.end_utt()
        if decoder.hyp() is None:
            return None
        return [s for s in decoder.seg() if not (s.word.startswith("<") or s.word.startswith("["))]

    def _align(self, audio: np.ndarray, words: list[tuple[int, int, str, str]]) -> list[tuple[float, float]]:
        norms = [norm for *_, norm in words]
        lines: list[str] = []
        seen: set[str] = set()
        for _, _, word, norm in words:
            if norm in seen:
                continue
            seen.add(norm)
            for k, phones in enumerate(self.pronunciations(word, norm)):
                lines.append(f"{norm if k == 0 else f'{norm}({k + 1})'} {phones}")
        pcm = to_pcm16(audio)
        with tempfile.TemporaryDirectory(prefix="pocketsphinx-align-") as folder:
            dictionary = Path(folder) / "prompt.dict"
            dictionary.write_text("\n".join(lines) + "\n")
            segments = self._decode(str(dictionary), norms, pcm, self.BEAMS)
            if segments is None or len(segments) != len(words):
                segments = self._decode(str(dictionary), norms, pcm, self.RETRY_BEAMS)
        if segments is None:
            raise AlignmentError(f"pocketsphinx found no alignment of {len(words)} words (also with beams "
                                 "1e-200); the audio may not contain the text.")
        if len(segments) != len(words):
            raise AlignmentError(f"pocketsphinx aligned {len(segments)} of {len(words)} words; the audio may not "
                                 "contain the text.")
        return [(s.start_frame / self._frame_rate, (s.end_frame + 1) / self._frame_rate) for s in segments]


def _read_dictionary(path: str) -> dict[str, tuple[str, ...]]:
    """A CMU-format pronunciation dictionary: word -> its pronunciations in file order ('word(2)' lines are the
    second pronunciation of 'word')."""
    out: dict[str, list[str]] = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            word, _, phones = line.strip().partition(" ")
            if not phones:
                continue
            out.setdefault(re.sub(r"\(\d+\)$", "", word), []).append(" ".join(phones.split()))
    return {word: tuple(prons) for word, prons in out.items()}


class MMSFAAligner(Aligner):
    """CTC forced alignment with torchaudio's `MMS_FA` bundle (as the torchaudio forced-alignment tutorial):
    emission = bundle.get_model()(waveform), token spans = bundle.get_aligner()(emission[0],
    bundle.get_tokenizer()(words)); frame -> seconds by the waveform/emission length ratio.

    `model` may be passed (any module mapping [1, samples] to ([1, frames, labels], _) log-probabilities over the
    bundle's labels); by default the bundle's weights are loaded from torch.hub's folder (`$TORCH_HOME/hub/
    checkpoints`), downloading them once when absent (network needed). The tokenizer, aligner and label dictionary
    come with torchaudio.
    """

    name = "mms-fa"

    def __init__(self, model: Any = None, device: str | None = None) -> None:
        torchaudio = require_module("torchaudio", "pip install torchaudio", self.name)
        import torch  # lazy: torch

        self._torch = torch
        self._bundle = torchaudio.pipelines.MMS_FA
        if self._bundle.sample_rate != SAMPLE_RATE:
            raise AlignmentError(f"MMS_FA expects {self._bundle.sample_rate} Hz audio, not {SAMPLE_RATE}.")
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if model is None:
            try:
                model = self._bundle.get_model(with_star=False)
            except Exception as exc:
                raise RuntimeError(f"Could not load the MMS_FA weights ({exc}). {self.unavailable() or ''}".strip()
                                   ) from exc
            self._weights = f"bundle {self._bundle._path.split('/')[-2]}/{self._bundle._path.split('/')[-1]}"
        else:
            self._weights = f"given, state_dict sha256:{state_dict_sha256(model)}" if hasattr(model, "state_dict") \
                else f"given {type(model).__name__}"
        self._model = model.to(self.device).eval() if hasattr(model, "to") else model
        self._tokenizer = self._bundle.get_tokenizer()
        self._aligner = self._bundle.get_aligner()
        self._version = dist_version("torchaudio")

    @classmethod
    def unavailable(cls, model: Any = None, **options: Any) -> str | None:
        """None when torchaudio is installed and either a model is given or the bundle's weights file is in
        torch.hub's checkpoint folder; else where it was looked for and how to get it."""
        missing = module_missing("torchaudio", "pip install torchaudio", cls.name)
        if missing or model is not None:
            return missing
        import torch  # lazy: torch
        import torchaudio  # lazy: torchaudio

        filename = torchaudio.pipelines.MMS_FA._path.split("/")[-1]
        folder = Path(torch.hub.get_dir()) / "checkpoints"
        if (folder / filename).is_file():
            return None
        return (f"MMS_FA weights not in {folder} ({filename}; torch.hub's folder, set by $TORCH_HOME). Fetch them "
                "with `python scripts/fetch_weights.py --root DIR` (the container build does) and set "
                "TORCH_HOME=DIR/torch, or run once with network access (they download there).")

    def settings(self) -> dict[str, Any]:
        return {"backend": self.name, "version": self._version, "bundle": "MMS_FA", "star": False,
                "weights": self._weights}

    def _align(self, audio: np.ndarray, words: list[tuple[int, int, str, str]]) -> list[tuple[float, float]]:
        torch = self._torch
        dictionary = self._bundle.get_dict(star=None)
        # MMS_FA's alphabet is romanised lowercase letters plus the apostrophe: drop anything else (digits too).
        transcript = ["".join(c for c in norm if c in dictionary) for *_, norm in words]
        missing = [w for (*_, w, _), t in zip(words, transcript) if not t]
        if missing:
            raise AlignmentError(f"MMS_FA cannot align words without letters: {missing}. Spell numbers out.")
        waveform = torch.from_numpy(audio)[None].to(self.device)  # [1, samples]
        with torch.inference_mode():
            emission, _ = self._model(waveform)  # [1, frames, labels] log-probabilities
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
