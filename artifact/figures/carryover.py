"""Figures of the carry-over analyses (PNG and PDF), one per analysis and fact set, both modalities on shared axes:
cross-modal patching (each direction beside the receiving modality's own restore), attention knockout, logit lens.
Drawn from carryover.json only: the statistics are computed in `artifact.analysis.carryover`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np
from matplotlib.ticker import MaxNLocator

from artifact.core.names import DIRECTION_LABELS, POSITION_LABELS
from artifact.figures.style import ARM_COLORS, kind_label, plt, save_figure

MODALITY_COLORS = {"text": ARM_COLORS["t2t"], "speech": ARM_COLORS["s2t"]}


def _arr(values) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def _models(doc: Mapping[str, Any]) -> str:
    models = doc["settings"]["models"]
    return models["text"] if models["text"] == models["speech"] else f"{models['text']} / {models['speech']}"


def _band(ax, entry: Mapping[str, Any], color: str, label: str, style: str = "-") -> None:
    mean = _arr(entry["mean"])
    layers = np.arange(len(mean))
    ax.plot(layers, mean, color=color, linestyle=style, label=label)
    ax.fill_between(layers, _arr(entry["ci_low"]), _arr(entry["ci_high"]), color=color, alpha=0.18, linewidth=0)


def _finish(ax, xlabel: str) -> None:
    ax.axhline(0, color="grey", linewidth=0.6)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=6)


def patching_figure(doc: Mapping[str, Any], set_name: str) -> plt.Figure:
    """Rows: restored kinds; columns: mapped positions. In each panel the cross-modal IE of both directions (solid,
    coloured by the receiving modality) and each receiving modality's own restore (dashed), 95% CI bands."""
    stats = doc["sets"][set_name]["statistics"]["patching"]
    plan = doc["settings"]["plan"]
    kinds, positions = plan["patch_kinds"], plan["positions"]
    fig, axes = plt.subplots(len(kinds), len(positions), figsize=(4.6 * len(positions), 2.8 * len(kinds)),
                             sharex=True, squeeze=False)
    for r, kind in enumerate(kinds):
        for c, position in enumerate(positions):
            ax = axes[r, c]
            for direction in plan["directions"]:
                entry = stats[f"{direction}/{kind}/{position}"]
                color = MODALITY_COLORS[entry["receiver"]]
                _band(ax, entry["cross"], color, f"{DIRECTION_LABELS[direction]} (cross-modal)")
                if "own" in entry:
                    _band(ax, entry["own"], color, f"{entry['receiver']} own state", style="--")
            ax.set_title(f"{kind_label(kind)}, {POSITION_LABELS[position]}", fontsize=8)
            _finish(ax, "layer" if kind == "hidden" else "layer (centre of the patched window)")
        axes[r, 0].set_ylabel("IE on P(answer), 95% CI", fontsize=8)
    fig.suptitle(f"Cross-modal patching, set '{set_name}' ({len(doc['sets'][set_name]['known_ids'])} facts), "
                 f"{_models(doc)}: donor's clean state into the other modality's corrupted run",
                 fontsize=8)
    fig.tight_layout()
    return fig


def knockout_figure(doc: Mapping[str, Any], set_name: str) -> plt.Figure:
    """Relative change of P(answer) when last -> subject attention is blocked in the window around each layer."""
    stats = doc["sets"][set_name]["statistics"]["knockout"]
    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for modality, entry in stats.items():
        _band(ax, {k: list(100 * _arr(v)) for k, v in entry["relative_change"].items() if k != "n_facts"},
              MODALITY_COLORS[modality], f"{modality} prompt")
    ax.set_ylabel("change of P(answer), % (95% CI)", fontsize=8)
    _finish(ax, f"layer (centre of the {doc['settings']['window']}-layer blocked window)")
    ax.set_title(f"Attention knockout last -> subject, set '{set_name}' "
                 f"({len(doc['sets'][set_name]['known_ids'])} facts), {_models(doc)}", fontsize=8)
    fig.tight_layout()
    return fig


def lens_figure(doc: Mapping[str, Any], set_name: str) -> plt.Figure:
    """Top: mean P(answer) read out per layer at each mapped position; bottom: share of facts whose answer is the
    top token. Both modalities on shared axes."""
    stats = doc["sets"][set_name]["statistics"]["lens"]
    positions = doc["settings"]["plan"]["positions"]
    fig, axes = plt.subplots(2, len(positions), figsize=(4.6 * len(positions), 5.2), sharex=True, squeeze=False)
    for c, position in enumerate(positions):
        for modality in ("text", "speech"):
            entry = stats[f"{modality}/{position}"]
            color = MODALITY_COLORS[modality]
            _band(axes[0, c], entry["prob"], color, f"{modality} prompt")
            share = _arr(entry["top1_share"])
            axes[1, c].plot(np.arange(len(share)), share, color=color, label=f"{modality} prompt")
        axes[0, c].set_title(POSITION_LABELS[position], fontsize=8)
        axes[0, c].set_yscale("log")  # the answer's probability spans orders of magnitude over the layers
        axes[1, c].axhline(0.5, color="grey", linestyle=":", linewidth=0.8)
        for row in (0, 1):
            _finish(axes[row, c], "layer")
    axes[0, 0].set_ylabel("P(answer) through the final norm (log), 95% CI", fontsize=8)
    axes[1, 0].set_ylabel("share of facts: answer is top-1", fontsize=8)
    fig.suptitle(f"Logit lens, set '{set_name}' ({len(doc['sets'][set_name]['known_ids'])} facts), "
                 f"{_models(doc)}", fontsize=8)
    fig.tight_layout()
    return fig


FIGURES = {"patching": patching_figure, "knockout": knockout_figure, "lens": lens_figure}


def plot_carryover(doc: Mapping[str, Any], out_dir: Path) -> list[Path]:
    """One figure per analysis and fact set into `out_dir` (carryover/figures); returns the written files."""
    written: list[Path] = []
    for set_name, entry in doc["sets"].items():
        for analysis, draw in FIGURES.items():
            if analysis in entry["statistics"]:
                written += save_figure(draw(doc, set_name), Path(out_dir) / f"{analysis}_{set_name}")
    return written


__all__ = ["knockout_figure", "lens_figure", "patching_figure", "plot_carryover"]
