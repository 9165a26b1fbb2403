"""Statistics of the carry-over analyses (issue 18), pure numpy: per-fact arrays in, curves with 95% bootstrap CIs
over facts and peaks with CIs out (in words: `carryover_summary`; the document: `carryover_document`).

- Cross-modal patching: IE = P(answer | receiver corrupted, donor's state patched) - P(answer | receiver corrupted),
  per layer; beside it the receiving modality's own restore at the same token group (its causal trace, same facts),
  and the share = cross-modal peak / own peak (the same resamples for both: a paired ratio).
- Knockout: relative change of P(answer) when last -> subject attention is blocked around each layer,
  (P_blocked - P_clean) / P_clean; its strongest drop and that layer per modality.
- Logit lens: mean P(answer) per layer at each mapped position, and the share of facts whose answer is the top
  text-mode token; the first layer at which it is for at least half of the facts.

Each statistic draws its resamples from its own stream (`bootstrap.stream` labelled by analysis and cell), so the
same facts give the same interval in every fact set.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from artifact.analysis.bootstrap import (
    BOOTSTRAP_SEED,
    CONFIDENCE,
    N_RESAMPLES,
    peak_interval,
    percentile_ci,
    ratio_interval,
    resample_weights,
    resampled_means,
    stream,
)
from artifact.core.jsonable import finite_or_none
from artifact.core.names import DIRECTIONS, MODALITIES

HALF = 0.5  # the lens's "formed" rule: the answer is the top token for at least half of the facts


def _list(a: np.ndarray) -> list[float | None]:
    return [finite_or_none(x) for x in np.asarray(a, dtype=np.float64).ravel()]


def curve(data: np.ndarray, weights: np.ndarray, confidence: float = CONFIDENCE) -> tuple[dict[str, Any], np.ndarray]:
    """Mean over facts of `data` [fact, layer] with percentile CIs per layer from the resample `weights`
    [resample, fact] (paired statistics share them), and the resampled means [resample, layer]. Facts with NaN in a
    layer are left out of that layer."""
    data = np.asarray(data, dtype=np.float64)
    finite = np.isfinite(data)
    n = finite.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, np.where(finite, data, 0.0).sum(axis=0) / np.maximum(n, 1), np.nan)
    boot = resampled_means(data, weights)
    low, high = percentile_ci(boot, confidence) if data.shape[0] >= 2 else (np.full(data.shape[1], np.nan),) * 2
    return {"n_facts": [int(x) for x in n], "mean": _list(mean), "ci_low": _list(low), "ci_high": _list(high)}, boot


def peak(mean: Sequence[float | None], boot: np.ndarray, confidence: float = CONFIDENCE, sign: int = 1
         ) -> dict[str, Any]:
    """The maximum (sign=1) or minimum (sign=-1) of a mean curve over layers: its layer, value and relative depth,
    with a basic bootstrap CI of the value and a percentile CI of the layer (`peak_interval`)."""
    m = sign * np.array([np.nan if x is None else x for x in mean], dtype=np.float64)
    L = m.shape[0]
    found = peak_interval(m, sign * boot, confidence) if boot.shape[0] else None
    if found is None:
        return {"layer": None, "value": None, "ci_low": None, "ci_high": None, "layer_ci_low": None,
                "layer_ci_high": None, "depth": None}
    value, lo, hi = found.value, found.ci_low, found.ci_high
    if sign < 0:
        value, lo, hi = -value, -hi, -lo
    return {"layer": found.layer, "value": finite_or_none(value), "ci_low": finite_or_none(lo),
            "ci_high": finite_or_none(hi), "layer_ci_low": finite_or_none(found.layer_ci_low),
            "layer_ci_high": finite_or_none(found.layer_ci_high), "depth": found.layer / max(1, L - 1)}


def ratio_of_peaks(num: Mapping[str, Any], den: Mapping[str, Any], num_boot: np.ndarray, den_boot: np.ndarray,
                   confidence: float = CONFIDENCE) -> dict[str, Any]:
    """num peak / den peak with a basic CI from paired resamples (the same facts drawn for both curves;
    `ratio_interval` of the resampled curves' maxima)."""
    found = None
    if num.get("value") is not None and den.get("value") is not None:
        with np.errstate(invalid="ignore", divide="ignore"):
            nb, db = np.nanmax(num_boot, axis=1), np.nanmax(den_boot, axis=1)
        found = ratio_interval(num["value"], den["value"], nb, db, confidence)
    if found is None:
        return {"value": None, "ci_low": None, "ci_high": None, "note": "undefined: the own-state peak is not > 0"}
    return dict(zip(("value", "ci_low", "ci_high"), map(finite_or_none, found)))


def formed_layer(top1: np.ndarray, weights: np.ndarray, share: float = HALF, confidence: float = CONFIDENCE
                 ) -> dict[str, Any]:
    """The first layer at which the answer is the top token for >= `share` of the facts (top1 [fact, layer] bool),
    with a percentile CI from the resampled fact sets; None (and 'never') when no layer reaches it."""
    def first(fractions: np.ndarray) -> float:
        hit = np.flatnonzero(fractions >= share)
        return float(hit[0]) if hit.size else math.nan

    top1 = np.asarray(top1, dtype=np.float64)
    if top1.shape[0] == 0:
        return {"layer": None, "ci_low": None, "ci_high": None, "share": share}
    observed = first(top1.mean(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        resampled = (weights @ top1) / weights.sum(axis=1, keepdims=True)
    layers = np.array([first(row) for row in resampled])
    never = np.isnan(layers).mean()
    L = top1.shape[1]
    alpha = (1 - confidence) / 2
    filled = np.where(np.isnan(layers), L, layers)  # 'never' sorts after the last layer
    lo, hi = (float(np.quantile(filled, q, method="inverted_cdf")) for q in (alpha, 1 - alpha))
    return {"layer": finite_or_none(observed), "ci_low": lo if lo < L else None, "ci_high": hi if hi < L else None,
            "never_share": float(never), "share": share}


def patching_statistics(arrays: Mapping[str, np.ndarray], own: Mapping[tuple[str, str, str], np.ndarray],
                        plan: Mapping[str, Any], boot: Mapping[str, Any]) -> dict[str, Any]:
    """Per direction, kind and position: the cross-modal IE curve and peak, the receiving modality's own restore
    (`own[(receiver, kind, position)]` [fact, layer], same facts) and peak, and the share of the own peak."""
    ie = arrays["patch_prob"] - arrays["low_prob"][:, :, None, None, None]
    out: dict[str, Any] = {}
    for d, direction in enumerate(plan["directions"]):
        receiver = DIRECTIONS[direction].receiver
        for k, kind in enumerate(plan["patch_kinds"]):
            for p, position in enumerate(plan["positions"]):
                seed = stream(boot["seed"], "carryover", "patching", direction, kind, position)
                weights = resample_weights(ie.shape[0], boot["n_resamples"], seed)
                cross, cross_boot = curve(ie[:, d, k, p], weights, boot["confidence"])
                entry: dict[str, Any] = {"direction": direction, "receiver": receiver, "kind": kind,
                                         "position": position, "cross": cross,
                                         "cross_peak": peak(cross["mean"], cross_boot, boot["confidence"])}
                own_data = own.get((receiver, kind, position))
                if own_data is not None:
                    own_curve, own_boot = curve(own_data, weights, boot["confidence"])
                    entry["own"] = own_curve
                    entry["own_peak"] = peak(own_curve["mean"], own_boot, boot["confidence"])
                    entry["share_of_own_peak"] = ratio_of_peaks(entry["cross_peak"], entry["own_peak"], cross_boot,
                                                                own_boot, boot["confidence"])
                out[f"{direction}/{kind}/{position}"] = entry
    return out


def knockout_statistics(arrays: Mapping[str, np.ndarray], boot: Mapping[str, Any]) -> dict[str, Any]:
    """Per modality: the mean relative change of P(answer) per blocked window, and its strongest drop."""
    clean = arrays["knockout_clean"]
    with np.errstate(invalid="ignore", divide="ignore"):
        relative = (arrays["knockout_prob"] - clean[:, :, None]) / clean[:, :, None]
    out: dict[str, Any] = {}
    for m, modality in enumerate(MODALITIES):
        weights = resample_weights(relative.shape[0], boot["n_resamples"],
                                   stream(boot["seed"], "carryover", "knockout", modality))
        entry, resampled = curve(relative[:, m], weights, boot["confidence"])
        out[modality] = {"relative_change": entry,
                         "strongest_drop": peak(entry["mean"], resampled, boot["confidence"], sign=-1)}
    return out


def lens_statistics(arrays: Mapping[str, np.ndarray], plan: Mapping[str, Any], boot: Mapping[str, Any]
                    ) -> dict[str, Any]:
    """Per modality and position: mean P(answer) per layer (and its peak), the top-1 share per layer, and the first
    layer where the answer is the top token for at least half of the facts."""
    out: dict[str, Any] = {}
    for m, modality in enumerate(MODALITIES):
        for p, position in enumerate(plan["positions"]):
            weights = resample_weights(arrays["lens_prob"].shape[0], boot["n_resamples"],
                                       stream(boot["seed"], "carryover", "lens", modality, position))
            prob, prob_boot = curve(arrays["lens_prob"][:, m, p], weights, boot["confidence"])
            top1 = arrays["lens_rank"][:, m, p] == 0
            out[f"{modality}/{position}"] = {
                "modality": modality, "position": position, "prob": prob,
                "prob_peak": peak(prob["mean"], prob_boot, boot["confidence"]),
                "top1_share": _list(top1.mean(axis=0)) if top1.shape[0] else [],
                "formed": formed_layer(top1, weights, HALF, boot["confidence"]),
            }
    return out


def carryover_statistics(arrays: Mapping[str, np.ndarray], own: Mapping[tuple[str, str, str], np.ndarray],
                         plan: Mapping[str, Any], confidence: float = CONFIDENCE, n_resamples: int = N_RESAMPLES,
                         seed: int = BOOTSTRAP_SEED) -> dict[str, Any]:
    """Every analysis of the plan on one fact set (`arrays` stacked over its facts)."""
    boot = {"confidence": confidence, "n_resamples": n_resamples, "seed": seed}
    out: dict[str, Any] = {"n_facts": int(arrays["known_id"].shape[0])}
    if "patching" in plan["analyses"]:
        out["patching"] = patching_statistics(arrays, own, plan, boot)
    if "knockout" in plan["analyses"]:
        out["knockout"] = knockout_statistics(arrays, boot)
    if "lens" in plan["analyses"]:
        out["lens"] = lens_statistics(arrays, plan, boot)
    return out


__all__ = ["carryover_statistics", "curve", "formed_layer", "knockout_statistics", "lens_statistics",
           "patching_statistics", "peak", "ratio_of_peaks"]
