"""Figures of a run (PNG and PDF): ROME Fig. 2-style token-group x layer AIE heatmaps, AIE-by-layer curves with CI
bands, the severed-path comparison (ROME Fig. 3), and optional per-fact heatmaps. Reads `aggregate/aie.json`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from matplotlib.ticker import MaxNLocator

from artifact.analysis.aggregate import load_aggregate
from artifact.analysis.effects import load_job
from artifact.core.layout import AGGREGATE_DIR, FIGURES_DIR
from artifact.core.names import GROUP_LABELS, GROUPS, KINDS, LAST_TOKEN_MEANING, METRIC_LABELS, METRICS
from artifact.figures.style import CONDITION_LABELS, KIND_COLORMAPS, KIND_COLORS, KIND_LABELS, plt, save_figure
from artifact.figures.trace import trace_heatmap


def _series(rows: Sequence[dict[str, Any]], **match) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
    """(layers, aie, ci_low, ci_high, n_facts) of the rows matching `match`, ordered by layer (None -> NaN)."""
    chosen = sorted((r for r in rows if all(r.get(k) == v for k, v in match.items())), key=lambda r: r["layer"])
    as_float = lambda key: np.array([np.nan if r[key] is None else r[key] for r in chosen], dtype=float)  # noqa: E731
    n = max((r["n_facts"] for r in chosen), default=0)
    return np.array([r["layer"] for r in chosen]), as_float("aie"), as_float("ci_low"), as_float("ci_high"), n


def _caption(doc: dict[str, Any], n: int | None = None) -> str:
    settings = doc["settings"]
    arm = settings["arm"]
    facts = f", n = {n} facts" if n is not None else ""
    return (f"{arm.upper().replace('2', '->')} on {settings['model']}{facts}; {LAST_TOKEN_MEANING.get(arm, '')}; "
            f"samples {settings['samples']}, noise {settings['noise']:.3g}")


def group_heatmap(doc: dict[str, Any], kind: str, metric: str = "prob") -> plt.Figure:
    """[group x layer] AIE of one kind, ROME Fig. 2 style (rows: the six token groups)."""
    rows = [r for r in doc["rows"] if r["effect"] == "AIE" and r["kind"] == kind and r["metric"] == metric]
    layers = 1 + max(r["layer"] for r in rows)
    grid = np.full((len(GROUPS), layers), np.nan)
    n = 0
    for r in rows:
        grid[GROUPS.index(r["group"]), r["layer"]] = np.nan if r["aie"] is None else r["aie"]
        n = max(n, r["n_facts"])
    fig, ax = plt.subplots(figsize=(5.2, 2.6))
    image = ax.pcolor(np.ma.masked_invalid(grid), cmap=KIND_COLORMAPS.get(kind, "Greys"))
    ax.invert_yaxis()
    ax.set_yticks(np.arange(len(GROUPS)) + 0.5)
    ax.set_yticklabels([GROUP_LABELS[g] for g in GROUPS], fontsize=8)
    step = max(1, layers // 8)
    ax.set_xticks(np.arange(0, layers, step) + 0.5)
    ax.set_xticklabels(range(0, layers, step), fontsize=8)
    window = doc["settings"]["window"]
    restored = f"center of interval of {window} restored {KIND_LABELS.get(kind, kind)} layers"
    ax.set_xlabel("layer" if kind == "hidden" else restored, fontsize=8)
    ax.set_title(f"Average indirect effect, {KIND_LABELS.get(kind, kind) if kind != 'hidden' else 'hidden state'}"
                 f"\n{_caption(doc, n)}", fontsize=8)
    fig.colorbar(image, ax=ax).set_label(METRIC_LABELS[metric], fontsize=7)
    return fig


def layer_curves(doc: dict[str, Any], metric: str = "prob", kinds: Sequence[str] = KINDS) -> plt.Figure:
    """AIE by layer with 95% CI bands, one line per kind: at the last subject token (left) and the last token."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2), sharey=True)
    ns = []
    for ax, group in zip(axes, ("last_subject", "last")):
        for kind in kinds:
            layers, aie, lo, hi, n = _series(doc["rows"], effect="AIE", kind=kind, metric=metric, group=group)
            if not len(layers):
                continue
            ns.append(n)
            label = "hidden state" if kind == "hidden" else KIND_LABELS[kind]
            ax.plot(layers, aie, color=KIND_COLORS[kind], label=f"{label} (n={n})")
            ax.fill_between(layers, lo, hi, color=KIND_COLORS[kind], alpha=0.2, linewidth=0)
        ax.axhline(0, color="grey", linewidth=0.6)
        ax.set_title(GROUP_LABELS[group], fontsize=9)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("layer (mlp/attn: centre of the restored window)", fontsize=8)
    axes[0].set_ylabel(METRIC_LABELS[metric] + ", 95% CI", fontsize=8)
    axes[0].legend(fontsize=7)
    fig.suptitle(_caption(doc), fontsize=8)
    fig.tight_layout()
    return fig


def severed_figure(doc: dict[str, Any], metric: str = "prob") -> plt.Figure:
    """ROME Fig. 3: AIE of restoring the hidden state at the last subject token, plain and with later MLP or
    attention outputs at that token frozen at their corrupted values."""
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    n = 0
    for condition in ("plain", "mlp", "attn"):
        layers, aie, lo, hi, n_c = _series(doc["severed_rows"], metric=metric, condition=condition)
        if not len(layers):
            continue
        n = max(n, n_c)
        color = KIND_COLORS[condition]
        ax.plot(layers, aie, color=color, label=CONDITION_LABELS[condition],
                linestyle="-" if condition == "plain" else "--")
        ax.fill_between(layers, lo, hi, color=color, alpha=0.15, linewidth=0)
    ax.axhline(0, color="grey", linewidth=0.6)
    ax.set_xlabel("layer of the restored hidden state (last subject token)", fontsize=8)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(METRIC_LABELS[metric] + ", 95% CI", fontsize=8)
    ax.set_title(f"Severed paths at the last subject token\n{_caption(doc, n)}", fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def fact_heatmaps(run_dir: Path, out_dir: Path, count: int, kinds: Sequence[str] = KINDS) -> list[Path]:
    """ROME-style heatmaps of the first `count` facts (by known_id) of each kind."""
    written = []
    for kind in kinds:
        for arrays in load_job(run_dir, kind)[:count]:
            config = json.loads(str(arrays["config"]))
            fig = trace_heatmap(arrays["scores"], [str(t) for t in arrays["token_labels"]],
                                tuple(int(x) for x in arrays["subject_range"]), kind, float(arrays["low_score"]),
                                str(arrays["answer"]), window=config.get("window"))
            stem = out_dir / "facts" / f"fact-{arrays['known_id'].item()}-{kind}"
            written += save_figure(fig, stem)
    return written


def plot_run(run_dir: Path, out_dir: Path | None = None, per_fact: int = 0,
             metrics: Sequence[str] = METRICS) -> list[Path]:
    """All figures of an aggregated run into `out_dir` (default `<run_dir>/figures`); returns the written files."""
    run_dir = Path(run_dir)
    doc = load_aggregate(run_dir)
    out_dir = Path(out_dir) if out_dir is not None else run_dir / FIGURES_DIR
    kinds = [k for k in KINDS if doc["n_facts"].get(k)]
    written: list[Path] = []
    for metric in metrics:
        for kind in kinds:
            written += save_figure(group_heatmap(doc, kind, metric), out_dir / f"aie_heatmap_{kind}_{metric}")
        if kinds:
            written += save_figure(layer_curves(doc, metric, kinds), out_dir / f"aie_layers_{metric}")
        if doc.get("severed_rows"):
            written += save_figure(severed_figure(doc, metric), out_dir / f"severed_{metric}")
    if per_fact:
        written += fact_heatmaps(run_dir, out_dir, per_fact, kinds)
    return written


__all__ = ["AGGREGATE_DIR", "fact_heatmaps", "group_heatmap", "layer_curves", "plot_run", "severed_figure"]
