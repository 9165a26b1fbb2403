"""ROME-style heatmap of one trace (tokens x layers)."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from artifact.figures.style import KIND_COLORMAPS, KIND_LABELS, plt


def trace_heatmap(
    scores: np.ndarray,
    token_labels: Sequence[str],
    subject_range: tuple[int, int],
    kind: str,
    low_score: float,
    answer: str,
    title: str | None = None,
    window: int | None = None,
) -> plt.Figure:
    """ROME-style heatmap of one trace: tokens (rows, subject marked with *) x layers, colour = P(answer).

    `scores` is [pos, layer]; NaN cells (untraced positions) are left blank.
    """
    b, e = subject_range
    labels = [f"{label}*" if b <= i < e else label for i, label in enumerate(token_labels)]
    fig, ax = plt.subplots(figsize=(3.5, max(2.0, 0.3 * len(labels) + 0.8)))
    masked = np.ma.masked_invalid(scores)
    image = ax.pcolor(masked, cmap=KIND_COLORMAPS.get(kind, "Greys"), vmin=low_score)
    ax.invert_yaxis()
    ax.set_yticks(np.arange(len(labels)) + 0.5)
    ax.set_yticklabels(labels)
    layers = scores.shape[1]
    step = max(1, layers // 6)
    ax.set_xticks(np.arange(0, layers, step) + 0.5)
    ax.set_xticklabels(range(0, layers, step))
    if title is None:
        title = f"Impact of restoring {'state' if kind == 'hidden' else KIND_LABELS[kind]}\nafter corrupted input"
    ax.set_title(title, fontsize=9)
    suffix = f" (window {window})" if window and kind != "hidden" else ""
    ax.set_xlabel(f"center of interval of {KIND_LABELS.get(kind, kind)} layers{suffix}" if kind != "hidden"
                  else "single restored layer")
    colorbar = fig.colorbar(image, ax=ax)
    colorbar.ax.set_title(f"p({answer.strip()})", fontsize=8)
    return fig
