"""Figure of one spoken prompt: waveform, aligned words, the subject's time span and its speech-token boundaries."""

from __future__ import annotations

import numpy as np

from artifact.figures.style import plt  # Agg backend set there
from artifact.speech.base import SAMPLE_RATE
from artifact.speech.front_end import SpokenFact


def spoken_fact_figure(fact: SpokenFact, title: str | None = None) -> "plt.Figure":
    """Waveform with word boundaries (grey), the subject's aligned span (shaded) and the boundaries of the speech
    tokens that cover it (red ticks)."""
    audio = fact.audio
    t = np.arange(len(audio)) / SAMPLE_RATE
    fig, ax = plt.subplots(figsize=(10, 3))
    ax.plot(t, audio, lw=0.4, color="0.3")
    top = float(np.abs(audio).max() or 1.0)
    for word in fact.words:
        ax.axvline(word.start, color="0.7", lw=0.6)
        ax.text((word.start + word.end) / 2, 1.02 * top, word.word, ha="center", va="bottom", fontsize=7)
    s, e = fact.subject_time
    ax.axvspan(s, e, color="tab:orange", alpha=0.25, label=f"subject {fact.subject!r} ({s:.2f}-{e:.2f} s)")
    b, en = fact.subject_tokens
    times = fact.units.token_times()
    for j in range(b, en):
        ax.axvline(times[j][0], ymin=0.0, ymax=0.12, color="tab:red", lw=0.8)
    ax.axvline(times[en - 1][1], ymin=0.0, ymax=0.12, color="tab:red", lw=0.8,
               label=f"speech-token boundaries (tokens {b}-{en - 1} of {len(fact.units.tokens)})")
    ax.set_xlim(0, t[-1] if len(t) else 1)
    ax.set_ylim(-1.1 * top, 1.25 * top)
    ax.set_xlabel("time (s)")
    ax.set_yticks([])
    ax.set_title(title or fact.text, fontsize=9)
    ax.legend(loc="lower right", fontsize=7)
    return fig
