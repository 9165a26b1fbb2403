"""The statistics behind the checks: paired differences, the per-layer band scaled by the run-to-run spread,
correlations of per-fact maps and of curves, peaks, set overlaps, and data sanity.
"""

from __future__ import annotations

import math
import warnings
from typing import Iterable, Sequence

import numpy as np
from scipy.stats import t as student_t

from artifact.core.names import ALWAYS_PRESENT_GROUPS, GROUPS
from artifact.verification.load import ArmData
from artifact.verification.records import ALPHA, BAND_FLOOR


def pair(regen: ArmData, expected: ArmData, kind: str, metric: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Facts present on both sides (expected order) and their [fact, group, layer] arrays (regenerated, expected)."""
    name = f"{kind}_{metric}"
    r_index = {i: n for n, i in enumerate(regen.fact_ids[kind])}
    ids = [i for i in expected.fact_ids[kind] if i in r_index]
    e_index = {i: n for n, i in enumerate(expected.fact_ids[kind])}
    r = regen.effects[name][[r_index[i] for i in ids]]
    e = expected.effects[name][[e_index[i] for i in ids]]
    return ids, r, e


def curve_difference(regen: np.ndarray, expected: np.ndarray, group: str) -> np.ndarray:
    """[layer] difference of two paired [fact, group, layer] arrays' AIE curves at one token group."""
    return aie_curve(regen, group) - aie_curve(expected, group)


def band_scale(pair_differences: Sequence[np.ndarray], floor: float = BAND_FLOOR) -> np.ndarray:
    """[layer] run-to-run spread of an AIE curve from the curve differences between pairs of independent runs:
    per layer the root mean square of the differences (= sqrt(2) x the SD over runs), its square moderated
    half-and-half with the median square over layers (an empirical-Bayes prior with as many degrees of freedom as
    the layer's own: a handful of runs agrees closely at some layer by chance, and an unmoderated band there is
    far too narrow), floored at `floor` (numerics)."""
    d = np.asarray(pair_differences, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        square = np.nanmean(d * d, axis=0)
        prior = float(np.nanmedian(square)) if np.any(np.isfinite(square)) else math.nan
    if not math.isfinite(prior):
        return np.sqrt(square)
    return np.maximum(np.sqrt((np.nan_to_num(square, nan=prior) + prior) / 2), floor)


def band_multiplier(runs: int, layers: int, alpha: float = ALPHA) -> float:
    """How many spreads a new run's curve may lie from the reference's at any layer: the two-sided Student t
    quantile at 1 - alpha/(2 L) with runs - 1 degrees of freedom: a prediction bound for one more independent run,
    Bonferroni over the L layers. The moderated spread (band_scale) would earn more degrees of freedom; they are
    not credited, because the spread does differ between layers (on the embedded smoke profile, crediting them
    FAILed 1 of 5 leave-one-out replicates)."""
    if runs < 2:
        return math.nan
    return float(student_t.ppf(1 - alpha / (2 * max(layers, 1)), runs - 1))


def band_statistic(difference: np.ndarray, scale: np.ndarray) -> tuple[float, int | None]:
    """(max over layers of |difference| / scale, the layer where it is reached); (NaN, None) when undefined."""
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.abs(np.asarray(difference, dtype=np.float64)) / np.asarray(scale, dtype=np.float64)
    if not z.size or not np.all(np.isfinite(z)):
        return math.nan, None
    worst = int(np.argmax(z))
    return float(z[worst]), worst


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson r over cells finite in both (NaN when fewer than 3 or either side is constant)."""
    x, y = np.ravel(np.asarray(x, dtype=np.float64)), np.ravel(np.asarray(y, dtype=np.float64))
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if x.size < 3:
        return math.nan
    x, y = x - x.mean(), y - y.mean()
    denom = math.sqrt(float(x @ x) * float(y @ y))
    return float(x @ y) / denom if denom > 0 else math.nan


def pearson_rows(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """[row] Pearson r of each row of x [row, cell] with the same row of y (broadcast), over cells finite in both;
    NaN for rows with fewer than 3 such cells or a constant side. Same numbers as `pearson`, vectorised."""
    x, y = np.broadcast_arrays(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
    keep = np.isfinite(x) & np.isfinite(y)
    n = keep.sum(axis=1)
    x0, y0 = np.where(keep, x, 0.0), np.where(keep, y, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        xc = np.where(keep, x0 - (x0.sum(axis=1) / n)[:, None], 0.0)
        yc = np.where(keep, y0 - (y0.sum(axis=1) / n)[:, None], 0.0)
        denom = np.sqrt((xc * xc).sum(axis=1) * (yc * yc).sum(axis=1))
        r = (xc * yc).sum(axis=1) / denom
    r[(n < 3) | ~(denom > 0)] = np.nan
    return r


def fact_correlations(r: np.ndarray, e: np.ndarray) -> np.ndarray:
    """[fact] Pearson r between each fact's regenerated and expected [group, layer] maps (NaN cells dropped)."""
    return pearson_rows(r.reshape(r.shape[0], -1), e.reshape(e.shape[0], -1))


def centred(maps: np.ndarray) -> np.ndarray:
    """[fact, group, layer] maps minus their mean over facts (NaN-mean per cell): each fact's own part."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return maps - np.nanmean(maps, axis=0, keepdims=True)


def fact_map_correlations(r: np.ndarray, e: np.ndarray) -> np.ndarray:
    """[fact] Pearson r between each paired fact's regenerated and expected map, each side centred on its own mean
    map over the paired facts. Centring removes the structure all facts share (on the embedded model's 40 T->T facts,
    raw maps of *different* facts correlate at median r 0.4-0.8 by kind; centred, at about 0), so the statistic
    tells a fact's own map from another fact's."""
    return fact_correlations(centred(r), centred(e))


def aie_curve(effects: np.ndarray, group: str) -> np.ndarray:
    """[layer] AIE of one group: NaN-mean over facts of [fact, group, layer]."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(effects[:, GROUPS.index(group), :], axis=0)


def peak_layer(curve: np.ndarray) -> int | None:
    return int(np.nanargmax(curve)) if np.any(np.isfinite(curve)) else None


def known_changes(a: Iterable[str], b: Iterable[str]) -> int:
    """How many facts are in one set but not the other (the symmetric difference)."""
    return len(set(a) ^ set(b))


def bad_cells(regen: np.ndarray) -> list[tuple[int, int, int]]:
    """(fact, group, layer) cells of a regenerated [fact, group, layer] array that should be finite but are not:
    any non-finite cell of an always-present group or of a partly finite (fact, group) row. (A whole NaN row of a
    group that can be empty, e.g. the middle of a one-token subject, is legitimate.)"""
    bad = ~np.isfinite(regen)
    if not bad.any():
        return []
    row_partial = bad.any(axis=2, keepdims=True) & ~bad.all(axis=2, keepdims=True)
    always = np.zeros_like(bad)
    for g in ALWAYS_PRESENT_GROUPS:
        always[:, GROUPS.index(g), :] = True
    return [tuple(int(v) for v in cell) for cell in np.argwhere(bad & (row_partial | always))]


def empty_group_mismatches(regen: np.ndarray, expected: np.ndarray) -> list[tuple[int, int]]:
    """(fact, group) pairs of paired [fact, group, layer] arrays where one side's group is empty (all NaN) and the
    other's is not. Token groups follow from tokenisation alone, so they never differ between reruns."""
    r_empty = ~np.isfinite(regen).any(axis=2)
    e_empty = ~np.isfinite(expected).any(axis=2)
    return [tuple(int(v) for v in cell) for cell in np.argwhere(r_empty != e_empty)]
