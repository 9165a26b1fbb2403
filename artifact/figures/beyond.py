"""Figures of issue 30's analyses (PNG and PDF), drawn from their documents only (the statistics are computed in
`artifact.analysis.transcription_document` and `corruption_document`):

- implicit transcription: mean P of the subject's first text token per layer at the last subject speech token, and
  the share of facts with it in the top k, with the transcription depth and the recall effects' layers marked;
- corruption choice: per kind, the last-subject-token AIE curve of each arm under each corruption.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
from matplotlib.ticker import MaxNLocator

from artifact.core.names import ARM_LABELS, ARMS
from artifact.figures.style import ARM_COLORS, kind_label, plt, save_figure

CORRUPTION_STYLES = {"noise_1": ":", "noise_3": "-", "noise_5": "--", "replacement": "-."}


def _arr(values) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def transcription_figure(doc: Mapping[str, Any]) -> plt.Figure:
    """Top: mean P (95% CI) of the subject's first and best text token at the last subject speech token; bottom: the
    share of facts with the first token in the top k, the half line, and the recall effects' layers."""
    stats = doc["statistics"]
    fig, axes = plt.subplots(2, 1, figsize=(6.0, 5.4), sharex=True)
    for token, color in (("first", ARM_COLORS["s2t"]), ("best", ARM_COLORS["t2t"])):
        entry = stats.get(f"{token}/last")
        if entry is None:
            continue
        mean = _arr(entry["prob"]["mean"])
        layers = np.arange(len(mean))
        axes[0].plot(layers, mean, color=color, label=f"subject's {token} text token")
        axes[0].fill_between(layers, _arr(entry["prob"]["ci_low"]), _arr(entry["prob"]["ci_high"]), color=color,
                             alpha=0.18, linewidth=0)
    axes[0].set_yscale("log")
    axes[0].set_ylabel("P over text-mode tokens (log), 95% CI", fontsize=8)
    for k, entry in stats["first/last"]["depth"].items():
        share = _arr(entry["top_k_share"])
        axes[1].plot(np.arange(len(share)), share, label=f"top {k}")
    axes[1].axhline(0.5, color="grey", linestyle=":", linewidth=0.8)
    for row in doc["beside_recall"][max(doc["beside_recall"], key=int)][1:]:
        if row["layer"] is not None:
            axes[1].axvline(row["layer"], color="grey", linewidth=0.6, alpha=0.6)
            axes[1].text(row["layer"], 0.97, row["name"].replace("the ", ""), rotation=90, fontsize=5, va="top",
                         transform=axes[1].get_xaxis_transform())  # x in layers, y in axes units
    axes[1].set_ylabel("share of facts (first token)", fontsize=8)
    for ax in axes:
        ax.set_xlabel("layer", fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6)
    fig.suptitle(f"Implicit transcription at the last subject speech token, {doc['n_facts']} facts, "
                 f"{doc['settings']['model']}", fontsize=8)
    fig.tight_layout()
    return fig


def corruption_figure(doc: Mapping[str, Any]) -> plt.Figure:
    """One panel per kind: each arm's last-subject-token AIE (P) per layer under each corruption (line style)."""
    kinds = doc["settings"]["kinds"]
    fig, axes = plt.subplots(1, len(kinds), figsize=(4.2 * len(kinds), 3.4), squeeze=False)
    for c, kind in enumerate(kinds):
        ax = axes[0, c]
        for corruption, entry in doc["corruptions"].items():
            curves = entry["metrics"]["prob"]["curves"].get(kind)
            if not curves:
                continue
            for arm in ARMS:
                mean = _arr(curves[arm])
                ax.plot(np.arange(len(mean)), mean, color=ARM_COLORS[arm],
                        linestyle=CORRUPTION_STYLES.get(corruption, "-"),
                        label=f"{ARM_LABELS[arm]}, {entry['label']} ({entry['metrics']['prob']['n_facts']})")
        ax.axhline(0, color="grey", linewidth=0.6)
        ax.set_title(f"{kind_label(kind)}, last subject token", fontsize=8)
        ax.set_xlabel("layer", fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=5)
    axes[0, 0].set_ylabel("AIE on P(answer)", fontsize=8)
    fig.suptitle(f"Corruption choice: AIE per corruption ({doc['n_facts']} facts, paired)", fontsize=8)
    fig.tight_layout()
    return fig


def plot_transcription(doc: Mapping[str, Any], out_dir: Path) -> list[Path]:
    """transcription/figures/transcription.{png,pdf}; returns the written files."""
    return save_figure(transcription_figure(doc), Path(out_dir) / "transcription")


def plot_corruption(doc: Mapping[str, Any], out_dir: Path) -> list[Path]:
    """corruption/figures/corruption.{png,pdf}; returns the written files."""
    return save_figure(corruption_figure(doc), Path(out_dir) / "corruption")


__all__ = ["corruption_figure", "plot_corruption", "plot_transcription", "transcription_figure"]
