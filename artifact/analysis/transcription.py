"""Statistics of the implicit-transcription lens (issue 30), pure numpy: per-fact curves in, depths with 95% bootstrap
CIs over facts and their place beside the recall effects out.

Per fact the lens gives, per layer, P and rank of the subject's text tokens over the text-mode vocabulary
(`artifact.tracing.transcription.TranscriptionResult.summary`): for the subject's first token or the best of its
tokens, at the last subject speech token or the best subject speech position. The *transcription depth* is the first
layer at which the subject's text is among the top k text-mode tokens for at least half of the facts, with a
percentile CI from resampled fact sets (`carryover.formed_layer`, the carry-over lens's "formed" rule). Put beside
the depths of the recall effects (patching peaks, knockout drop, MLP site), it says whether speech reads as text
before the model recalls.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from artifact.analysis.bootstrap import BOOTSTRAP_SEED, CONFIDENCE, N_RESAMPLES, resample_weights, stream
from artifact.analysis.carryover import HALF, curve, formed_layer

TOKENS: dict[str, str] = {"first": "the subject's first text token", "best": "the best of the subject's text tokens"}
WHERE: dict[str, str] = {"last": "the last subject speech token", "any": "any subject speech position"}
TOP_K: tuple[int, ...] = (1, 10)  # top-1: the text-mode argmax; top-10: "among the few candidates"
RELATIONS = ("before", "after", "overlaps", "never", "undetermined")


def top_k(ranks: np.ndarray, k: int) -> np.ndarray:
    """[fact, layer] bool: rank < k (rank 0 is the text-mode argmax), from ranks [fact, layer]."""
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be an integer >= 1 (1 = the top text-mode token); got {k!r}")
    return np.asarray(ranks) < k


def transcription_depth(ranks: np.ndarray, k: int, weights: np.ndarray, share: float = HALF,
                        confidence: float = CONFIDENCE) -> dict[str, Any]:
    """The first layer at which the subject's text is top-`k` for >= `share` of the facts (ranks [fact, layer]), with
    a percentile CI from the resample `weights` [resample, fact]; the top-k share of the facts per layer beside it.
    `layer` is None when no layer reaches the share; a CI bound is None when it lies past the last layer (never)."""
    hits = top_k(ranks, k)
    out = formed_layer(hits, weights, share, confidence)
    out.update(k=int(k), n_facts=int(hits.shape[0]),
               top_k_share=[float(x) for x in hits.mean(axis=0)] if hits.shape[0] else [])
    return out


def transcription_statistics(curves: Mapping[str, np.ndarray], ks: Sequence[int] = TOP_K,
                             confidence: float = CONFIDENCE, n_resamples: int = N_RESAMPLES,
                             seed: int = BOOTSTRAP_SEED) -> dict[str, Any]:
    """Per token choice (first, best) and read position (last, any): the mean P curve with CIs and, per k, the
    transcription depth. `curves` holds `{first,best}_{prob,rank}_{last,any}` arrays [fact, layer] (the facts'
    `summary()` stacked); a missing pair is left out. Each view resamples from its own stream."""
    out: dict[str, Any] = {}
    for token in TOKENS:
        for where in WHERE:
            prob, rank = curves.get(f"{token}_prob_{where}"), curves.get(f"{token}_rank_{where}")
            if prob is None or rank is None:
                continue
            prob, rank = np.asarray(prob, dtype=np.float64), np.asarray(rank)
            if prob.shape != rank.shape or prob.ndim != 2:
                raise ValueError(f"{token}/{where}: prob {prob.shape} and rank {rank.shape} must both be [fact, layer]")
            weights = resample_weights(prob.shape[0], n_resamples, stream(seed, "transcription", token, where))
            mean, _ = curve(prob, weights, confidence)
            out[f"{token}/{where}"] = {
                "token": token, "where": where, "n_facts": int(prob.shape[0]), "prob": mean,
                "depth": {str(k): transcription_depth(rank, k, weights, HALF, confidence) for k in ks},
            }
    return out


@dataclass(frozen=True)
class Depth:
    """A layer with an optional CI: the transcription depth or a recall effect's layer."""

    name: str
    layer: float | None
    low: float | None = None  # CI bounds; None = unknown (or, for the transcription depth's high end, never)
    high: float | None = None

    @classmethod
    def from_peak(cls, name: str, entry: Mapping[str, Any]) -> "Depth":
        """From `carryover.peak`'s output (layer, layer_ci_low, layer_ci_high): a patching peak or knockout drop."""
        return cls(name, entry.get("layer"), entry.get("layer_ci_low"), entry.get("layer_ci_high"))

    @classmethod
    def from_formed(cls, name: str, entry: Mapping[str, Any]) -> "Depth":
        """From `transcription_depth` / `formed_layer` output (layer, ci_low, ci_high)."""
        return cls(name, entry.get("layer"), entry.get("ci_low"), entry.get("ci_high"))


def relation(transcription: Depth, effect: Depth) -> str:
    """Where the transcription depth lies relative to an effect's layer: 'before' / 'after' when the CIs are
    disjoint, 'overlaps' when they share a layer, 'never' when speech never reads as text for half the facts,
    'undetermined' when the effect has no layer or either CI is missing."""
    if transcription.layer is None:
        return "never"
    if effect.layer is None or effect.low is None or effect.high is None or transcription.low is None:
        return "undetermined"
    t_high = math.inf if transcription.high is None else transcription.high  # an open CI reaches 'never'
    if t_high < effect.low:
        return "before"
    if transcription.low > effect.high:
        return "after"
    return "overlaps"


def beside_recall_depths(transcription: Depth, effects: Sequence[Depth], num_layers: int) -> list[dict[str, Any]]:
    """One row per depth, the transcription first: layer, CI, relative depth (layer / (L - 1)) and, for each effect,
    where the transcription lies relative to it."""
    def row(depth: Depth) -> dict[str, Any]:
        relative = None if depth.layer is None else depth.layer / max(1, num_layers - 1)
        return {"name": depth.name, "layer": depth.layer, "ci_low": depth.low, "ci_high": depth.high,
                "relative_depth": relative}

    rows = [row(transcription)]
    for effect in effects:
        rows.append({**row(effect), "transcription": relation(transcription, effect)})
    return rows


def _span(low: float | None, high: float | None) -> str:
    if low is None:
        return ""
    return f" [{int(low)}, {'never' if high is None else int(high)}]"


def depth_sentence(rows: Sequence[Mapping[str, Any]], k: int, token: str = "first", where: str = "last") -> str:
    """One sentence for the summary from `beside_recall_depths` rows."""
    depth, effects = rows[0], rows[1:]
    what = f"{TOKENS[token]} is among the top {k} text-mode tokens at {WHERE[where]}"
    if depth["layer"] is None:
        return (f"Implicit transcription: {what} for half the facts at no layer, so speech does not read as text "
                "before (or after) the recall effects.")
    text = (f"Implicit transcription: {what} for half the facts from layer {int(depth['layer'])}"
            f"{_span(depth['ci_low'], depth['ci_high'])} (relative depth {depth['relative_depth']:.2f})")
    words = {"before": "before", "after": "after", "overlaps": "not separable from",
             "undetermined": "not comparable with (no CI)", "never": "never reached before"}
    parts = [f"{words[e['transcription']]} {e['name']} (layer "
             f"{'none' if e['layer'] is None else int(e['layer'])}{_span(e['ci_low'], e['ci_high'])})"
             for e in effects]
    return text + ("; that is " + ", ".join(parts) if parts else "") + "."


__all__ = ["Depth", "RELATIONS", "TOKENS", "TOP_K", "WHERE", "beside_recall_depths", "depth_sentence", "relation",
           "top_k", "transcription_depth", "transcription_statistics"]
