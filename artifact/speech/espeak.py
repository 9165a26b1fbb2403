"""espeak-ng through its C library (libespeak-ng, ctypes): audio plus the word and phoneme events it reports while
speaking, and its letter-to-sound rules.

Running the library (not the `espeak-ng` program) gives, for one full utterance, both the waveform and where each word
is in it, which is the ground truth the offline aligner is validated against. The library keeps global state, so
calls are serialised with a lock.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from dataclasses import dataclass

import numpy as np

from artifact.speech.base import WordTime

LIBRARY_NAMES = ("libespeak-ng.so.1", "libespeak-ng.so", "libespeak-ng.1.dylib")
INSTALL_HINT = "Install espeak-ng (Debian/Ubuntu: 'sudo apt-get install espeak-ng'; scripts/bootstrap.sh does it as root)."

# speak_lib.h constants.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_INITIALIZE_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_EVENT_LIST_TERMINATED, _EVENT_WORD, _EVENT_END, _EVENT_PHONEME = 0, 1, 5, 7
_PARAM_RATE, _PARAM_PITCH = 1, 3


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),  # 1-based character position of the word in the input text
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),  # milliseconds
        ("sample", ctypes.c_int),  # samples at the library's rate (22050 Hz)
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


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
    """espeak-ng's output for one text: int16-range float waveform at `sample_rate` and its events."""

    audio: np.ndarray  # [samples] float32 in [-1, 1]
    sample_rate: int
    events: list[Event]


class _Library:
    """The loaded libespeak-ng, initialised once per process."""

    def __init__(self) -> None:
        path = None
        for name in (*LIBRARY_NAMES, ctypes.util.find_library("espeak-ng")):
            if not name:
                continue
            try:
                self.lib = ctypes.CDLL(name)
                path = name
                break
            except OSError:
                continue
        if path is None:
            raise RuntimeError(f"The espeak-ng library (libespeak-ng) is not installed. {INSTALL_HINT}")
        self.lock = threading.Lock()
        self.sample_rate = int(
            self.lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, None,
                                       _INITIALIZE_PHONEME_EVENTS | _INITIALIZE_DONT_EXIT)
        )
        if self.sample_rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed ({self.sample_rate}); is espeak-ng-data installed? "
                               f"{INSTALL_HINT}")
        self._chunks: list[np.ndarray] = []
        self._events: list[Event] = []
        self._callback = _CALLBACK(self._collect)  # keep a reference: ctypes would free it otherwise
        self.lib.espeak_SetSynthCallback(self._callback)
        self.lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        self.lib.espeak_Info.restype = ctypes.c_char_p

    def _collect(self, wav, count, events) -> int:
        if count > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            e = events[i]
            if e.type == _EVENT_WORD:
                self._events.append(Event("word", e.text_position - 1, e.length, e.sample))
            elif e.type == _EVENT_PHONEME:
                name = bytes(e.id.string).split(b"\0")[0].decode("ascii", "replace")
                self._events.append(Event("phoneme", e.text_position - 1, 0, e.sample, name))
            elif e.type == _EVENT_END:
                self._events.append(Event("end", e.text_position - 1, 0, e.sample))
            i += 1
        return 0

    def version(self) -> str:
        return self.lib.espeak_Info(None).decode()

    def set_voice(self, voice: str, rate: int, pitch: int) -> None:
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"espeak-ng has no voice {voice!r}; list them with 'espeak-ng --voices'.")
        self.lib.espeak_SetParameter(_PARAM_RATE, int(rate), 0)
        self.lib.espeak_SetParameter(_PARAM_PITCH, int(pitch), 0)

    def synthesize(self, text: str, voice: str, rate: int, pitch: int) -> Utterance:
        with self.lock:
            self.set_voice(voice, rate, pitch)
            self._chunks, self._events = [], []
            data = text.encode("utf-8")
            status = self.lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
            self.lib.espeak_Synchronize()
            if status != 0:
                raise RuntimeError(f"espeak_Synth failed with status {status} for {text!r}.")
            audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
            return Utterance((audio.astype(np.float32) / 32768.0), self.sample_rate, list(self._events))

    def phonemes(self, text: str, voice: str) -> list[str]:
        """eSpeak phoneme mnemonics of `text` (stress marks removed), in order."""
        with self.lock:
            self.set_voice(voice, 175, 50)
            pointer = ctypes.c_char_p(text.encode("utf-8"))
            out: list[str] = []
            mode = ord(" ") << 8  # eSpeak mnemonics, separated by spaces
            while pointer.value:
                chunk = self.lib.espeak_TextToPhonemes(ctypes.byref(pointer), _CHARS_UTF8, mode)
                if chunk is None:
                    break
                out += [p.strip("',") for p in chunk.decode("utf-8", "replace").split()]
            return [p for p in out if p]


_LIBRARY: _Library | None = None


def library() -> _Library:
    """The process-wide espeak-ng library (loaded on first use)."""
    global _LIBRARY
    if _LIBRARY is None:
        _LIBRARY = _Library()
    return _LIBRARY


def available() -> bool:
    """True when libespeak-ng can be loaded."""
    try:
        library()
        return True
    except RuntimeError:
        return False


def synthesize(text: str, voice: str = "en-us", rate: int = 175, pitch: int = 50) -> Utterance:
    """Speak `text` with espeak-ng: waveform at 22050 Hz plus word and phoneme events."""
    return library().synthesize(text, voice, rate, pitch)


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
    import re

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
    for name in library().phonemes(word, voice):
        name = name.replace(";", "")
        mapped = ESPEAK_TO_ARPABET.get(name) or ESPEAK_TO_ARPABET.get(name.rstrip("0123456789#-/"))
        if mapped:
            phones.extend(mapped.split())
    return " ".join(phones)
