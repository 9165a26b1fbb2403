"""espeak-ng through its C library (libespeak-ng, ctypes): audio plus the word and phoneme events it reports while
speaking, and its letter-to-sound rules.

Running the library (not the `espeak-ng` program) gives, for one full utterance, both the waveform and where each word
is in it, which is the ground truth the offline aligner is validated against.

libespeak-ng keeps state between syntheses in one process: the same text spoken again in the same process gives a
slightly different waveform (lengths differ by a sample, word positions by up to ~10 samples). So no synthesis runs in
this process: a small server (`espeak_worker.py`, standard library only) initialises the library once, never speaks,
and forks a fresh child per request; the child's result depends only on the request, in any process, whatever was
spoken before. Audio and events of one request come from the same synthesis. The server starts on first use (about
0.1 s) and adds about 10 ms per synthesis; it exits when this process closes its pipe.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from artifact.speech.base import WordTime
from artifact.speech.espeak_worker import INSTALL_HINT, load_library  # noqa: F401  (INSTALL_HINT re-exported)

WORKER = Path(__file__).resolve().parent / "espeak_worker.py"
# Recorded in EspeakTTS.settings() (so it keys the cache): how a synthesis is run.
ISOLATION = "fork-per-synthesis-v1"
TIMEOUT = 120.0  # seconds per request, enforced by the server (it kills a child that hangs)


@dataclass(frozen=True)
class Event:
    """One event of a synthesis: kind ('word' | 'phoneme' | 'end'), text position (0-based char), sample."""

    kind: str
    text_position: int  # 0-based character offset into the input text (word and phoneme events)
    length: int  # word length in characters (word events)
    sample: int  # position in the output audio, at `sample_rate`
    phoneme: str = ""  # eSpeak phoneme mnemonic (phoneme events); '_' prefixed names are pauses


@dataclass
class Utterance:
    """espeak-ng's output for one text: float32 waveform in [-1, 1) at `sample_rate` and its events, from one
    synthesis."""

    audio: np.ndarray  # [samples] float32 in [-1, 1)
    sample_rate: int
    events: list[Event]


class EspeakServer:
    """The synthesis server of this process (see the module docstring): one request at a time, thread-safe;
    restarted when it died or when this process is a fork of the one that started it."""

    def __init__(self, timeout: float = TIMEOUT) -> None:
        self.timeout = timeout
        self.lock = threading.Lock()
        self._process: subprocess.Popen | None = None
        self._owner = -1
        self.sample_rate = 0
        self.version = ""

    def _start(self) -> subprocess.Popen:
        args = [sys.executable, "-I", "-S", str(WORKER), str(self.timeout)]
        process = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True)
        hello = self._header(process)
        if not hello.get("ok"):
            process.stdin.close()
            process.wait(timeout=30)
            raise RuntimeError(f"espeak-ng could not start: {hello.get('error')}")
        self.sample_rate, self.version = int(hello["sample_rate"]), str(hello["version"])
        self._process, self._owner = process, os.getpid()
        return process

    @staticmethod
    def _header(process: subprocess.Popen) -> dict:
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"The espeak-ng server ({sys.executable} {WORKER}) exited; run it by hand to see why.")
        return json.loads(line)

    def _running(self) -> subprocess.Popen:
        process = self._process
        if process is None or self._owner != os.getpid() or process.poll() is not None:
            process = self._start()
        return process

    def start(self) -> "EspeakServer":
        """Start the server now (raises RuntimeError with the install command when espeak-ng is missing)."""
        with self.lock:
            self._running()
        return self

    def request(self, request: dict) -> tuple[dict, bytes]:
        """Send one request; its reply header and payload. RuntimeError/ValueError when it failed."""
        with self.lock:
            process = self._running()
            try:
                process.stdin.write(json.dumps(request).encode("utf-8") + b"\n")
                process.stdin.flush()
                header = self._header(process)
                payload = process.stdout.read(int(header.get("audio_bytes", 0)))
            except (BrokenPipeError, RuntimeError, ValueError):
                self.close_locked()
                raise
        if not header.get("ok"):
            error = str(header.get("error"))
            raise (ValueError if error.startswith("ValueError") else RuntimeError)(f"espeak-ng: {error}")
        return header, payload

    def close_locked(self) -> None:
        process, self._process = self._process, None
        if process is not None and self._owner == os.getpid() and process.poll() is None:
            try:
                process.stdin.close()
                process.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                process.kill()
                process.wait()

    def close(self) -> None:
        with self.lock:
            self.close_locked()


_SERVER = EspeakServer()


def server() -> EspeakServer:
    """The process-wide synthesis server (started on first use)."""
    return _SERVER


def available() -> bool:
    """True when libespeak-ng can be loaded."""
    try:
        load_library()
        return True
    except RuntimeError:
        return False


def version() -> str:
    """espeak-ng's version (starts the server; RuntimeError with the install command when absent)."""
    return server().start().version


def synthesize(text: str, voice: str = "en-us", rate: int = 175, pitch: int = 50) -> Utterance:
    """Speak `text` with espeak-ng in a fresh child process: waveform at 22050 Hz plus word and phoneme events of
    that same synthesis. Identical results for identical arguments, whatever was synthesised before."""
    header, payload = server().request({"op": "synth", "text": text, "voice": voice, "rate": int(rate),
                                        "pitch": int(pitch)})
    audio = np.frombuffer(payload, dtype="<i2").astype(np.float32) / 32768.0
    events = [Event(kind, int(position), int(length), int(sample), str(name))
              for kind, position, length, sample, name in header["events"]]
    return Utterance(audio, int(header["sample_rate"]), events)


@functools.lru_cache(maxsize=65536)
def _phonemes(text: str, voice: str) -> tuple[str, ...]:
    header, _ = server().request({"op": "phonemes", "text": text, "voice": voice})
    return tuple(header["phonemes"])


def phonemes(text: str, voice: str = "en-us") -> list[str]:
    """eSpeak phoneme mnemonics of `text` (stress marks removed), in order; computed in a fresh child like a
    synthesis, so a pure function of (text, voice) (and memoised)."""
    return list(_phonemes(text, voice))


def _is_pause(name: str) -> bool:
    return name.startswith("_")


def word_times(text: str, utterance: Utterance) -> list[WordTime]:
    """Where each whitespace-separated word of `text` is in `utterance`, from espeak-ng's own events.

    A word starts at its word event (after any pause phonemes espeak-ng puts there) and ends at the next word's
    event, or at the first pause after its last phoneme, whichever is earlier. Words espeak-ng does not speak
    (e.g. a lone '-') get no entry. Times are seconds.
    """
    spans = _text_words(text)
    events = utterance.events
    rate = float(utterance.sample_rate)
    word_events = [(k, e) for k, e in enumerate(events) if e.kind == "word"]
    # Which text word each word event belongs to (numbers can give several events per text word).
    owner: list[int] = []
    for _, event in word_events:
        owner.append(next((i for i, (s, e, _) in enumerate(spans) if s <= event.text_position < e), -1))
    result: list[WordTime] = []
    for w, (start_char, end_char, word) in enumerate(spans):
        mine = [j for j, o in enumerate(owner) if o == w]
        if not mine:
            continue
        first_k = word_events[mine[0]][0]
        last_j = mine[-1]
        start = events[first_k].sample
        if w == 0 or not result:  # the first word: leading silence is not part of it; start at its first phoneme
            start = next((e.sample for e in events[first_k:] if e.kind == "phoneme" and not _is_pause(e.phoneme)
                          and e.phoneme != ";"), start)
        # Skip pauses espeak-ng places at the start of the word (e.g. after a comma).
        k = first_k + 1
        while k < len(events) and events[k].kind == "phoneme" and _is_pause(events[k].phoneme):
            k += 1
            if k < len(events):
                start = events[k].sample
        next_word_k = word_events[last_j + 1][0] if last_j + 1 < len(word_events) else len(events)
        end = events[next_word_k].sample if next_word_k < len(events) else len(utterance.audio)
        for event in events[word_events[last_j][0] + 1: next_word_k]:
            if event.kind == "phoneme" and _is_pause(event.phoneme) and event.sample > start:
                end = min(end, event.sample)
                break
            if event.kind == "end":
                end = min(end, event.sample)
        result.append(WordTime(word, start / rate, max(start, end) / rate, start_char, end_char))
    return result


def _text_words(text: str) -> list[tuple[int, int, str]]:
    """(start, end, word) of every whitespace-separated word of `text`."""
    return [(m.start(), m.end(), m.group()) for m in re.finditer(r"\S+", text)]


# eSpeak English phoneme mnemonics -> CMU ARPAbet (pocketsphinx's phone set). Used only to give the offline aligner
# pronunciations of words its dictionary lacks (proper names); the aligner's timing is pocketsphinx's own.
ESPEAK_TO_ARPABET: dict[str, str] = {
    "a": "AE", "a#": "AE", "aa": "AA", "A:": "AA", "A": "AA", "A@": "AA R", "aI": "AY", "aI@": "AY ER", "aI3": "AY ER",
    "aU": "AW", "aU@": "AW ER", "@": "AH", "@2": "AH", "@5": "AH", "@L": "AH L", "@r": "ER", "3": "ER", "3:": "ER",
    "e": "EH", "E": "EH", "E2": "EH", "e@": "EH R", "eI": "EY", "i": "IY", "i:": "IY", "i@": "IH R", "i@3": "IH R",
    "I": "IH", "I2": "IH", "I#": "IH", "0": "AA", "0@": "AO R", "O": "AO", "O:": "AO", "O@": "AO R", "o@": "AO R",
    "OI": "OY", "oU": "OW", "oU#": "OW", "u:": "UW", "u": "UW", "U": "UH", "U@": "UH R", "V": "AH",
    "p": "P", "b": "B", "t": "T", "t#": "T", "t2": "T", "d": "D", "d#": "D", "k": "K", "g": "G", "f": "F", "v": "V",
    "T": "TH", "D": "DH", "s": "S", "z": "Z", "S": "SH", "Z": "ZH", "tS": "CH", "dZ": "JH", "h": "HH", "m": "M",
    "n": "N", "N": "NG", "l": "L", "r": "R", "r-": "R", "j": "Y", "w": "W", "x": "K", "C": "HH", "?": "T",
    "n-": "AH N", "l-": "AH L", "m-": "AH M", "z#": "Z", "z/2": "Z",
}


def arpabet(word: str, voice: str = "en-us") -> str:
    """ARPAbet pronunciation of `word` from espeak-ng's letter-to-sound rules ('' if none maps)."""
    phones: list[str] = []
    for name in phonemes(word, voice):
        name = name.replace(";", "")
        mapped = ESPEAK_TO_ARPABET.get(name) or ESPEAK_TO_ARPABET.get(name.rstrip("0123456789#-/"))
        if mapped:
            phones.extend(mapped.split())
    return " ".join(phones)
