"""Data passed between the speech stages. Audio is always 16 kHz mono float32 in [-1, 1], shape [samples]."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np

SAMPLE_RATE = 16_000
UNIT_HOP = 640  # samples per speech unit at 16 kHz: 25 units per second, as SpiritLM's HuBERT tokenizer
UNIT_RATE = SAMPLE_RATE / UNIT_HOP
VOCABULARY = 500  # speech units [Hu0]..[Hu499]


@dataclass(frozen=True)
class WordTime:
    """One word of the text and where it is spoken, in seconds; char offsets locate it in the text."""

    word: str
    start: float
    end: float
    char_start: int
    char_end: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "WordTime":
        return cls(**data)


@dataclass(frozen=True)
class SpeechUnits:
    """A unit sequence at 25 Hz and its deduplicated tokens, keeping which frames every token covers.

    `frames[i]` is the unit of frame i (samples [i*640, (i+1)*640)); `tokens[j]` the j-th unit after removing
    consecutive repeats, covering frames `token_frames[j] = (first, end)` (end exclusive).
    """

    frames: tuple[int, ...]  # [frames]
    tokens: tuple[int, ...]  # [tokens]
    token_frames: tuple[tuple[int, int], ...]  # [tokens] of (first frame, end frame)
    frame_rate: float = UNIT_RATE

    @classmethod
    def from_frames(cls, frames: Sequence[int], frame_rate: float = UNIT_RATE) -> "SpeechUnits":
        """Deduplicate `frames` (consecutive repeats removed) and keep the frame range of every token."""
        frames = tuple(int(u) for u in frames)
        if not frames:
            raise ValueError("No speech units: the audio is shorter than one unit frame (40 ms).")
        tokens: list[int] = []
        spans: list[tuple[int, int]] = []
        for i, unit in enumerate(frames):
            if tokens and unit == tokens[-1] and spans[-1][1] == i:
                spans[-1] = (spans[-1][0], i + 1)
            else:
                tokens.append(unit)
                spans.append((i, i + 1))
        return cls(frames, tuple(tokens), tuple(spans), frame_rate)

    @property
    def frame_to_token(self) -> np.ndarray:
        """[frames] index of the token covering each frame."""
        out = np.empty(len(self.frames), dtype=np.int64)
        for j, (a, b) in enumerate(self.token_frames):
            out[a:b] = j
        return out

    def token_times(self) -> list[tuple[float, float]]:
        """[tokens] (start, end) seconds of every token."""
        return [(a / self.frame_rate, b / self.frame_rate) for a, b in self.token_frames]

    def unit_string(self) -> str:
        """SpiritLM's speech string of the tokens, `[Hu12][Hu7]...`, without the `[Speech]` marker."""
        return "".join(f"[Hu{u}]" for u in self.tokens)

    def tokens_overlapping(self, start: float, end: float) -> tuple[int, int]:
        """Token range [b, e) of the tokens whose frames overlap the time span [start, end) seconds."""
        if not end > start:
            raise ValueError(f"Empty time span [{start}, {end}): the span must have positive length.")
        hits = [j for j, (a, b) in enumerate(self.token_times()) if a < end and b > start]
        if not hits:
            raise ValueError(f"No speech token overlaps [{start:.3f}, {end:.3f}) s; the audio lasts "
                             f"{len(self.frames) / self.frame_rate:.3f} s.")
        return hits[0], hits[-1] + 1

    def to_dict(self) -> dict[str, Any]:
        return {"frames": list(self.frames), "frame_rate": self.frame_rate}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SpeechUnits":
        return cls.from_frames(data["frames"], data.get("frame_rate", UNIT_RATE))


def check_audio(audio: np.ndarray, what: str = "audio") -> np.ndarray:
    """`audio` as a 1-D float32 array of finite, not silent samples, else a ValueError saying what is wrong."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError(f"The {what} must be mono, shape [samples]; got shape {audio.shape}.")
    if audio.size == 0:
        raise ValueError(f"The {what} is empty (0 samples).")
    if not np.all(np.isfinite(audio)):
        raise ValueError(f"The {what} contains NaN or infinite samples.")
    if float(np.max(np.abs(audio))) < 1e-4:
        raise ValueError(f"The {what} is silent (peak amplitude below 1e-4); nothing was spoken.")
    return audio


def check_text(text: str) -> str:
    """`text` stripped, or a ValueError when nothing is left to speak."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("The text is empty: pass the prompt to speak (e.g. 'The Eiffel Tower is located in').")
    return text.strip()
