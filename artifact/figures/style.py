"""One style for every figure: Matplotlib with the Agg backend (no screen needed), the colours and labels of kinds,
arms and severed conditions, and how figures are saved (PNG and PDF, 150 dpi, tight)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from artifact.core.fileio import write_atomic  # noqa: E402

KIND_COLORMAPS = {"hidden": "Purples", "mlp": "Greens", "attn": "Reds"}
KIND_LABELS = {"hidden": "single restored layer", "mlp": "MLP", "attn": "Attn"}
KIND_COLORS = {"hidden": "tab:purple", "mlp": "tab:green", "attn": "tab:red", "plain": "tab:purple"}
ARM_COLORS = {"t2t": "tab:blue", "s2t": "tab:orange"}
CONDITION_LABELS = {"plain": "hidden state restored", "mlp": "... with later MLPs severed",
                    "attn": "... with later attention severed"}


def kind_label(kind: str) -> str:
    """How a kind is named in titles: the hidden state, or the restored sub-module."""
    return "hidden state" if kind == "hidden" else KIND_LABELS.get(kind, kind)


def save_figure(fig: plt.Figure, path: Path, formats: Sequence[str] = ("png", "pdf")) -> list[Path]:
    """Save `fig` as each format beside `path` (suffix replaced) and close it; returns the written paths."""
    path.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for fmt in formats:
        target = path.with_suffix("." + fmt)
        # atomic: a full disk or a kill never leaves a half-written figure
        write_atomic(target, lambda handle: fig.savefig(handle, format=fmt, dpi=150, bbox_inches="tight"))
        written.append(target)
    plt.close(fig)
    return written
