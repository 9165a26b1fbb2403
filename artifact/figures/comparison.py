"""Figures of the modality comparison (PNG and PDF): both arms' AIE curves with CI bands and their difference,
heatmap pairs (token group x layer), per fact set and kind, and the length-normalised view when computed. Drawn from
the comparison document (`comparison.json`) only: the statistics are computed in `artifact.analysis.compare`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from matplotlib.ticker import MaxNLocator

from artifact.core.names import ARM_LABELS, GROUP_LABELS, GROUPS, LAST_TOKEN_MEANING
from artifact.figures.style import ARM_COLORS, KIND_COLORMAPS, kind_label, plt, save_figure


def _arr(values) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def _title(doc: Mapping[str, Any], set_name: str, kind: str, result: Mapping[str, Any]) -> str:
    n = result["n_facts"]
    facts = f"n = {n['t2t']} facts" if result["paired"] else f"n = {n['t2t']} (T->T) / {n['s2t']} (S->T) facts"
    model = doc["settings"]["t2t"]["model"]
    return (f"{kind_label(kind)}, set '{set_name}' ({'paired' if result['paired'] else 'unpaired'}), {facts}, "
            f"{model}\nT->T: {LAST_TOKEN_MEANING['t2t']}; S->T: {LAST_TOKEN_MEANING['s2t']}")


def curves_figure(doc: Mapping[str, Any], set_name: str, kind: str) -> plt.Figure:
    """Top: AIE by layer of both arms with 95% CI bands at the last subject token and the last token. Bottom: S->T
    minus T->T with its pointwise CI (band) and simultaneous band (dashed)."""
    result = doc["results"][set_name][kind]
    metric = doc["metric"]
    fig, axes = plt.subplots(2, 2, figsize=(9.5, 5.6), sharex=True)
    for col, group in enumerate(("last_subject", "last")):
        ax = axes[0, col]
        for arm in ("t2t", "s2t"):
            curve = result["arms"][arm]["groups"][group]
            layers = np.arange(len(curve["aie"]))
            ax.plot(layers, _arr(curve["aie"]), color=ARM_COLORS[arm],
                    label=f"{ARM_LABELS[arm]} (n={curve['n_facts']})")
            ax.fill_between(layers, _arr(curve["ci_low"]), _arr(curve["ci_high"]), color=ARM_COLORS[arm],
                            alpha=0.2, linewidth=0)
        ax.axhline(0, color="grey", linewidth=0.6)
        ax.set_title(GROUP_LABELS[group] + (" (T->T: final prompt token; S->T: [Text] marker)"
                                            if group == "last" else ""), fontsize=8)
        ax.legend(fontsize=7)
        diff = result["groups"][group]["difference"]
        ax = axes[1, col]
        layers = np.arange(len(diff["mean"]))
        ax.plot(layers, _arr(diff["mean"]), color="k", label="S->T - T->T")
        ax.fill_between(layers, _arr(diff["ci_low"]), _arr(diff["ci_high"]), color="grey", alpha=0.3, linewidth=0,
                        label="95% CI (pointwise)")
        ax.plot(layers, _arr(diff["band_low"]), color="grey", linestyle="--", linewidth=0.8,
                label="95% simultaneous band")
        ax.plot(layers, _arr(diff["band_high"]), color="grey", linestyle="--", linewidth=0.8)
        ax.axhline(0, color="grey", linewidth=0.6)
        ax.set_xlabel("layer" if kind == "hidden" else "layer (centre of the restored window)", fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=6)
    axes[0, 0].set_ylabel(f"AIE ({metric}), 95% CI", fontsize=8)
    axes[1, 0].set_ylabel("difference S->T - T->T", fontsize=8)
    fig.suptitle(_title(doc, set_name, kind, result), fontsize=8)
    fig.tight_layout()
    return fig


def heatmap_pair(doc: Mapping[str, Any], set_name: str, kind: str) -> plt.Figure:
    """Group x layer AIE of both arms side by side on one colour scale (ROME Fig. 2 style)."""
    result = doc["results"][set_name][kind]
    grids = {arm: np.array([_arr(result["arms"][arm]["groups"][g]["aie"]) for g in GROUPS])
             for arm in ("t2t", "s2t")}
    finite = np.concatenate([g[np.isfinite(g)] for g in grids.values()])
    vmax = float(finite.max()) if finite.size else 1.0
    vmin = min(0.0, float(finite.min())) if finite.size else 0.0
    fig, axes = plt.subplots(1, 2, figsize=(10, 2.9), sharey=True)
    image = None
    for ax, arm in zip(axes, ("t2t", "s2t")):
        grid = grids[arm]
        image = ax.pcolor(np.ma.masked_invalid(grid), cmap=KIND_COLORMAPS.get(kind, "Greys"), vmin=vmin, vmax=vmax)
        layers = grid.shape[1]
        step = max(1, layers // 8)
        ax.set_xticks(np.arange(0, layers, step) + 0.5)
        ax.set_xticklabels(range(0, layers, step), fontsize=7)
        ax.set_title(f"{ARM_LABELS[arm]}, n = {result['n_facts'][arm]} facts ({LAST_TOKEN_MEANING[arm]})", fontsize=8)
        ax.set_xlabel("layer" if kind == "hidden" else "centre of the restored window", fontsize=7)
    axes[0].invert_yaxis()
    axes[0].set_yticks(np.arange(len(GROUPS)) + 0.5)
    axes[0].set_yticklabels([GROUP_LABELS[g] for g in GROUPS], fontsize=7)
    fig.colorbar(image, ax=list(axes)).set_label(f"AIE ({doc['metric']})", fontsize=7)
    fig.suptitle(f"Average indirect effect ({doc['metric']}), {kind_label(kind)}, set '{set_name}'", fontsize=9,
                 y=1.04)
    return fig


def plot_comparison(doc: Mapping[str, Any], out_dir: Path, sets: Sequence[str] | None = None) -> list[Path]:
    """Every comparison figure (of every fact set, or of `sets`) into `out_dir/figures`; returns the written files."""

    folder = Path(out_dir) / "figures"
    written: list[Path] = []
    for set_name, per_kind in doc["results"].items():
        if sets is not None and set_name not in sets:
            continue
        for kind in per_kind:
            written += save_figure(curves_figure(doc, set_name, kind), folder / f"curves_{set_name}_{kind}")
            written += save_figure(heatmap_pair(doc, set_name, kind), folder / f"heatmaps_{set_name}_{kind}")
    norm = doc.get("normalised") or {}
    for set_name, per_kind in norm.get("sets", {}).items():
        if sets is not None and set_name not in sets:
            continue
        for kind, entry in per_kind.items():
            fig = normalised_figure(entry, kind, set_name, norm["subject_bins"], doc["metric"])
            written += save_figure(fig, folder / f"normalised_{set_name}_{kind}")
    return written


__all__ = ["curves_figure", "heatmap_pair", "plot_comparison"]


def normalised_figure(entry: Mapping[str, Any], kind: str, set_name: str, subject_bins: int, metric: str = "prob"):
    """Heatmap pair (T->T, S->T) of the length-normalised view of one kind: bins x layer, a line after the subject."""
    grids = {arm: np.array(entry[arm]["aie"], dtype=float) for arm in ("t2t", "s2t")}
    vmax = max(np.nanmax(g) for g in grids.values())
    vmin = min(0.0, min(np.nanmin(g) for g in grids.values()))
    fig, axes = plt.subplots(1, 2, figsize=(9.5, 3.2), sharey=True)
    image = None
    for ax, arm in zip(axes, ("t2t", "s2t")):
        grid = grids[arm]
        image = ax.pcolor(np.ma.masked_invalid(grid), cmap=KIND_COLORMAPS.get(kind, "Greys"), vmin=vmin, vmax=vmax)
        ax.axhline(subject_bins, color="k", linewidth=0.8)
        ax.set_title(f"{'T->T' if arm == 't2t' else 'S->T'}, n = {entry[arm]['n_facts']} facts\n"
                     f"({LAST_TOKEN_MEANING[arm]})", fontsize=8)
        ax.set_xlabel("layer" if kind == "hidden" else "centre of the restored window", fontsize=8)
        layers = grid.shape[1]
        step = max(1, layers // 8)
        ax.set_xticks(np.arange(0, layers, step) + 0.5)
        ax.set_xticklabels(range(0, layers, step))
        ax.tick_params(labelsize=7)
    rows = grids["t2t"].shape[0]
    axes[0].invert_yaxis()
    axes[0].set_yticks([subject_bins / 2, subject_bins + (rows - subject_bins) / 2])
    axes[0].set_yticklabels(["subject\n(start->end)", "after subject\n(->answer pos.)"], fontsize=7)
    label = kind_label(kind)
    fig.suptitle(f"Length-normalised AIE ({metric}), {label}, set {set_name!r}: subject in {subject_bins} bins, "
                 f"the tokens after it in {rows - subject_bins}", fontsize=9, y=1.06)
    fig.colorbar(image, ax=list(axes)).set_label(f"AIE ({metric})", fontsize=7)
    return fig
