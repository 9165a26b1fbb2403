"""The modality comparison: T->T against S->T on the same facts, per kind and token group, with bootstrap CIs.

Fact sets (facts pair across the two run folders by `known_id`; both runs use the same fact file):

- "both": facts traced (i.e. known) in both runs. Paired: every bootstrap resample draws the same facts for both arms.
- "own": each arm on its own known set (T->T on Known-t2t, S->T on Known-s2t), as the paper analyses them. Unpaired:
  the arms are resampled independently.
- named subsets passed in (e.g. the embedded model's "train" and "held_out" facts, `split_from_manifest`), each
  intersected with "both" and paired.

Statistics per set, kind and token group (metric "prob" by default: IE = P(answer | restored) - P(answer | corrupted)):

- AIE curve per arm over layers: mean over facts, 95% BCa CI (`aggregate.bootstrap_mean_ci`).
- Difference S->T minus T->T per layer. Paired sets: mean of per-fact differences, BCa CI (facts resampled jointly,
  since the statistic is the mean of per-fact differences). Unpaired set: difference of means, percentile CI from
  independent resamples. Plus a simultaneous 95% band over layers: the max-statistic ("sup-t") band,
  mean +- c * se where se is the bootstrap standard error per layer and c the 95% quantile of
  max over layers of |resampled - observed| / se; it covers the whole curve at once with 95% probability.
- Peak per arm: the layer of the largest AIE and that AIE. The layer's CI is the percentile interval of the argmax
  over the resampled curves (`mode_share`: the share of resamples whose argmax is the observed peak layer); the peak
  AIE's CI is the basic (reverse-percentile) interval of the max over the resampled curves. Basic, because a max of
  noisy means is biased upward and resampling adds the same bias again: the percentile interval can miss the
  estimate itself, the basic interval subtracts the bias the bootstrap estimates. The same holds for every grid
  statistic below (ratios, peak differences, entropy), which all get basic intervals.
- Ratio of peak AIEs S->T / T->T with its CI from the (paired or independent) resamples; undefined (None) when the
  T->T peak is not positive.

Over the (group, layer) grid of each arm, with the last-token group left out ("mechanism" groups
`MECHANISM_GROUPS`: restoring the last token's hidden state at late layers restores the output whatever the
mechanism, which would dominate every grid statistic):

- overall peak (group, layer, AIE) and the ratio of overall peaks;
- subject peak (max over first/middle/last subject tokens) and near-subject peak (also the first subsequent token),
  each minus the peak at the further tokens: how much more the subject region carries than the rest of the prompt;
- diffuseness: normalised entropy of the positive AIE mass over the grid, H = -sum p log p / log K with
  p = max(AIE, 0) / sum max(AIE, 0) over the K cells (the same cells in both arms: those with a finite mean in
  both); 0 = all mass in one cell, 1 = spread evenly. It measures "more diffuse" directly (how evenly the effect is
  spread over tokens and layers), independent of its overall size, which the peak ratio measures. The S->T minus
  T->T entropy difference gets its CI from the same resamples. Clipping at 0 turns noise in cells without an effect
  into positive mass, so the plug-in entropy is biased upward, the more so the weaker the effect and the fewer the
  facts (a weaker arm with the same shape looks more diffuse); `bootstrap_bias` reports the bootstrap's estimate of
  that bias and the basic interval corrects for it.

All resampling is deterministic (numpy default_rng with fixed seeds). The claims of the paper are judged from this
document by `artifact.analysis.claims`.
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from artifact.analysis import claims, normalised
from artifact.analysis.bootstrap import (
    BOOTSTRAP_SEED,
    CI_METHOD,
    CONFIDENCE,
    N_RESAMPLES,
    basic_ci,
    bootstrap_mean_ci,
    peak_interval,
    percentile_ci,
    quiet_nanmean,
    ratio_interval,
    resample_weights,
    resampled_means,
    simultaneous_band,
    stream,
    two_way_means,
)
from artifact.analysis.effects import fact_effects, mechanism_view
from artifact.analysis.markdown import comparison_markdown
from artifact.core.fileio import write_atomic, write_json_atomic
from artifact.core.jsonable import finite_or_none
from artifact.core.layout import COMPARISON_DIR, COMPARISON_FILE, COMPARISON_MD, SUMMARY_FILE, ResultsFolderError
from artifact.core.names import (
    ARM_LABELS,
    FURTHER_GROUP,
    GROUPS,
    KINDS,
    LAST_TOKEN_MEANING,
    MECHANISM_GROUPS,
    NEAR_SUBJECT_GROUPS,
    SUBJECT_GROUPS,
)
from artifact.core.settings import load_settings

log = logging.getLogger(__name__)


BAND_METHOD = "max-statistic (sup-t) simultaneous band over layers from the bootstrap resamples"


def _list(a: np.ndarray) -> list[float | None]:
    return [finite_or_none(x) for x in np.asarray(a, dtype=np.float64).ravel()]


def _interval(value: Any, low: Any, high: Any, **extra) -> dict[str, Any]:
    return {"value": finite_or_none(value), "ci_low": finite_or_none(low), "ci_high": finite_or_none(high), **extra}


def paired_difference(t2t: np.ndarray, s2t: np.ndarray, confidence: float = CONFIDENCE,
                      n_resamples: int = N_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> dict[str, Any]:
    """S->T minus T->T per column (layer) of paired per-fact arrays [fact] or [fact, layer] (row i = the same fact
    in both). Mean of per-fact differences with a BCa CI (facts resampled jointly) and a max-statistic simultaneous
    band over the columns. Facts with NaN in either arm are left out of that column."""
    t2t, s2t = np.asarray(t2t, dtype=np.float64), np.asarray(s2t, dtype=np.float64)
    if t2t.shape != s2t.shape:
        raise ValueError(f"paired arrays must have the same shape (one row per fact); got {t2t.shape}, {s2t.shape}")
    diff = s2t - t2t
    squeeze = diff.ndim == 1
    diff2 = diff[:, None] if squeeze else diff.reshape(diff.shape[0], -1)
    n, mean, low, high, methods = bootstrap_mean_ci(diff2, confidence, n_resamples, seed)
    boot = resampled_means(diff2, resample_weights(diff2.shape[0], n_resamples, (seed, 1)))
    band_low, band_high, c = simultaneous_band(mean, boot, confidence)
    return {"n_facts": [int(x) for x in n], "mean": _list(mean), "ci_low": _list(low), "ci_high": _list(high),
            "ci_method": methods, "band_low": _list(band_low), "band_high": _list(band_high),
            "band_critical_value": finite_or_none(c), "band_method": BAND_METHOD, "paired": True}


def normalised_entropy(grid: np.ndarray) -> np.ndarray:
    """Normalised entropy of the positive mass of `grid` [..., cells] over its last axis; NaN cells count as 0 mass.
    0 = all mass in one cell, 1 = evenly spread; NaN when there is no positive mass or a single cell."""
    grid = np.asarray(grid, dtype=np.float64)
    k = grid.shape[-1]
    mass = np.clip(np.nan_to_num(grid, nan=0.0), 0.0, None)
    total = mass.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = mass / total
        h = -np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0).sum(axis=-1)
        out = h / math.log(k) if k > 1 else np.full(h.shape, np.nan)
    return np.where(total[..., 0] > 0, out, np.nan)


def _peak(curve: np.ndarray, boot: np.ndarray, confidence: float) -> dict[str, Any]:
    """Peak layer and AIE of a curve [layer] with CIs from resampled curves [resample, layer] (`peak_interval`)."""
    found = peak_interval(curve, boot, confidence)
    if found is None:
        return {"layer": None, "layer_ci_low": None, "layer_ci_high": None, "mode_share": None,
                **_interval(math.nan, math.nan, math.nan)}
    return {"layer": found.layer, "layer_ci_low": finite_or_none(found.layer_ci_low),
            "layer_ci_high": finite_or_none(found.layer_ci_high), "mode_share": finite_or_none(found.mode_share),
            **_interval(found.value, found.ci_low, found.ci_high)}


def _ratio(num: np.ndarray, den: np.ndarray, num_boot: np.ndarray, den_boot: np.ndarray,
           confidence: float) -> dict[str, Any]:
    """Ratio of peaks with a basic CI (`ratio_interval`); undefined when the denominator's peak is not positive."""
    found = ratio_interval(num, den, num_boot, den_boot, confidence)
    if found is None:
        return _interval(math.nan, math.nan, math.nan, note="undefined: T->T peak not positive")
    return _interval(*found)


def _grid_peak(mean: np.ndarray, boot: np.ndarray, groups: Sequence[str], confidence: float) -> dict[str, Any]:
    """Peak over the cells of `groups` (rows of mean [group, layer] in GROUPS order) with CIs: the group and layer of
    the observed peak, percentile CIs of its layer (argmax layer over the resampled grids) and of the max."""
    rows = [GROUPS.index(g) for g in groups]
    sub, sub_boot = mean[rows], boot[:, rows]
    if not np.isfinite(sub).any():
        return {"group": None, "layer": None, "layer_ci_low": None, "layer_ci_high": None,
                **_interval(math.nan, math.nan, math.nan)}
    flat = int(np.nanargmax(sub))
    g, layer = divmod(flat, sub.shape[1])
    b = np.where(np.isfinite(sub_boot), sub_boot, -np.inf).reshape(sub_boot.shape[0], -1)
    layers = (b.argmax(axis=1) % sub.shape[1]).astype(np.float64)
    alpha = (1 - confidence) / 2
    lo, hi = basic_ci(sub[g, layer], b.max(axis=1), confidence)
    return {"group": groups[g], "layer": int(layer),
            "layer_ci_low": float(np.quantile(layers, alpha, method="inverted_cdf")),
            "layer_ci_high": float(np.quantile(layers, 1 - alpha, method="inverted_cdf")),
            **_interval(sub[g, layer], lo, hi)}


def _grid_max(mean: np.ndarray, groups: Sequence[str]) -> np.ndarray:
    """Max over the cells of `groups` of grids [..., group, layer] (NaN when all cells are NaN)."""
    rows = [GROUPS.index(g) for g in groups]
    sub = mean[..., rows, :].reshape(*mean.shape[:-2], -1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmax(sub, axis=-1)


def _difference_of_peaks(mean: np.ndarray, boot: np.ndarray, groups: Sequence[str], confidence: float
                         ) -> dict[str, Any]:
    """Peak over `groups` minus peak at the further tokens, with a percentile CI."""
    value = _grid_max(mean, groups) - _grid_max(mean, (FURTHER_GROUP,))
    samples = _grid_max(boot, groups) - _grid_max(boot, (FURTHER_GROUP,))
    lo, hi = basic_ci(value, samples, confidence)
    return _interval(value, lo, hi, groups=list(groups), minus=FURTHER_GROUP)


def mechanism_cells(*means: np.ndarray) -> np.ndarray:
    """[group, layer] mask: the cells of the mechanism groups whose mean is finite in every given grid. Both arms'
    entropies are taken over the same cells, so a group empty in one arm (e.g. middle subject tokens when every
    text subject has at most two tokens) does not make that arm look concentrated merely by having fewer cells."""
    mask = np.zeros(means[0].shape, dtype=bool)
    mask[[GROUPS.index(g) for g in MECHANISM_GROUPS]] = True
    for mean in means:
        mask &= np.isfinite(mean)
    return mask


def arm_statistics(effects: np.ndarray, mechanism: np.ndarray, boot: np.ndarray, mechanism_boot: np.ndarray,
                   confidence: float = CONFIDENCE, n_resamples: int = N_RESAMPLES, seed: int = BOOTSTRAP_SEED,
                   entropy_cells: np.ndarray | None = None) -> dict[str, Any]:
    """One arm on one set: curves with BCa CIs per group and their peaks (from `effects` [fact, group, layer] and
    its resampled means `boot` [resample, group, layer]), and the grid statistics of the mechanism (from
    `mechanism`, the same effects with the last token kept out of every group but its own, and `mechanism_boot`).
    `entropy_cells` [group, layer]: the cells the entropy is taken over (default: the mechanism groups' cells with a
    finite mean)."""
    n_f, G, L = effects.shape
    n, mean, low, high, methods = bootstrap_mean_ci(effects.reshape(n_f, G * L), confidence, n_resamples, seed)
    mean, low, high = mean.reshape(G, L), low.reshape(G, L), high.reshape(G, L)
    n = n.reshape(G, L)
    curves = {}
    for g, group in enumerate(GROUPS):
        curves[group] = {"n_facts": int(n[g].max()) if L else 0, "aie": _list(mean[g]), "ci_low": _list(low[g]),
                         "ci_high": _list(high[g]), "ci_method": sorted(set(methods[g * L:(g + 1) * L])),
                         "peak": _peak(mean[g], boot[:, g], confidence)}
    grid = quiet_nanmean(mechanism)
    cells = mechanism_cells(grid) if entropy_cells is None else np.asarray(entropy_cells, dtype=bool)
    entropy = normalised_entropy(grid[cells])
    entropy_boot = normalised_entropy(mechanism_boot[:, cells])
    e_lo, e_hi = basic_ci(entropy, entropy_boot, confidence)
    e_lo, e_hi = np.clip(e_lo, 0.0, 1.0), np.clip(e_hi, 0.0, 1.0)  # the parameter's range
    return {
        "n_facts": int(n_f),
        "groups": curves,
        "overall_peak": _grid_peak(grid, mechanism_boot, MECHANISM_GROUPS, confidence),
        "subject_peak": _grid_peak(grid, mechanism_boot, SUBJECT_GROUPS, confidence),
        "near_subject_peak": _grid_peak(grid, mechanism_boot, NEAR_SUBJECT_GROUPS, confidence),
        "further_peak": _grid_peak(grid, mechanism_boot, (FURTHER_GROUP,), confidence),
        "subject_minus_further": _difference_of_peaks(grid, mechanism_boot, SUBJECT_GROUPS, confidence),
        "last_subject_minus_further": _difference_of_peaks(grid, mechanism_boot, ("last_subject",), confidence),
        "near_subject_minus_further": _difference_of_peaks(grid, mechanism_boot, NEAR_SUBJECT_GROUPS, confidence),
        "entropy": _interval(entropy, e_lo, e_hi, bootstrap_bias=finite_or_none(np.nanmean(entropy_boot) - entropy)),
    }


def _unpaired_difference(mean_t: np.ndarray, mean_s: np.ndarray, boot_t: np.ndarray, boot_s: np.ndarray,
                         confidence: float) -> dict[str, Any]:
    """S->T - T->T per layer of one group from independent resamples of each arm: percentile CIs and a band."""
    d_mean, d_boot = mean_s - mean_t, boot_s - boot_t
    lo, hi = percentile_ci(d_boot, confidence)
    b_lo, b_hi, c = simultaneous_band(d_mean, d_boot, confidence)
    return {"mean": _list(d_mean), "ci_low": _list(lo), "ci_high": _list(hi),
            "ci_method": "percentile (independent resamples of each arm)", "band_low": _list(b_lo),
            "band_high": _list(b_hi), "band_critical_value": finite_or_none(c), "band_method": BAND_METHOD,
            "paired": False}


CI_SOURCES = "facts and noise samples (two-way bootstrap of the crossed design, bootstrap.two_way_means)"


def compare_arrays(t2t: np.ndarray, s2t: np.ndarray, paired: bool, confidence: float = CONFIDENCE,
                   n_resamples: int = N_RESAMPLES, seed: int = BOOTSTRAP_SEED, kind: str = "",
                   t2t_subsequent_is_last: np.ndarray | None = None,
                   s2t_subsequent_is_last: np.ndarray | None = None,
                   t2t_samples: np.ndarray | None = None, s2t_samples: np.ndarray | None = None) -> dict[str, Any]:
    """The comparison of one set and kind from per-fact effects [fact, group, layer] of each arm (rows aligned by
    fact when `paired`). Deterministic for a fixed seed.

    Random streams (`bootstrap.stream`): one per arm and kind for the statistics of one arm, so the same facts give
    the same intervals in every fact set; one per kind, shared by both arms, for the paired statistics of a paired
    set (ratios, entropy difference); an unpaired set uses the arms' independent streams. `*_subsequent_is_last`
    [fact] marks facts whose first subsequent token is the last token, kept out of the mechanism statistics.

    With both arms' per-noise-sample effects `*_samples` [fact, sample, group, layer], the resampled statistics
    (peaks, differences of peaks, ratios, entropies: everything the claims read) resample the noise samples too
    (`bootstrap.two_way_means`; one noise stream per kind shared by both arms, since sample s of either arm comes
    from the same noise stream), and each such interval also carries `facts_only` (the facts-only interval) and
    `noise_share` = 1 - facts-only width / two-way width: how much of its width the noise adds, and the result
    `ci_sources` says so. The per-layer curve CIs and the paired differences per layer stay facts-only (BCa).
    Without per-sample effects (traces of older runs) the result is facts-only and has no `ci_sources`, so a
    comparison of an older results folder recomputes to the same document."""
    facts_only = _compare_arrays(t2t, s2t, paired, confidence, n_resamples, seed, kind, t2t_subsequent_is_last,
                                 s2t_subsequent_is_last, None)
    if t2t_samples is None or s2t_samples is None:
        return facts_only
    samples = {"t2t": np.asarray(t2t_samples, dtype=np.float64), "s2t": np.asarray(s2t_samples, dtype=np.float64)}
    for arm, x in samples.items():
        effects = t2t if arm == "t2t" else s2t
        if x.ndim != 4 or x.shape[0] != np.shape(effects)[0] or x.shape[2:] != np.shape(effects)[1:]:
            raise ValueError(f"{arm} per-sample effects must be [fact, sample, group, layer] matching the effects "
                             f"{np.shape(effects)}; got {x.shape}")
    two_way = _compare_arrays(t2t, s2t, paired, confidence, n_resamples, seed, kind, t2t_subsequent_is_last,
                              s2t_subsequent_is_last, samples)
    _annotate_noise_share(two_way, facts_only)
    return {**two_way, "ci_sources": CI_SOURCES}


def _annotate_noise_share(two_way: Any, facts_only: Any) -> None:
    """Give every scalar interval of `two_way` its facts-only twin from `facts_only` (the same statistic) and the
    share of its width the noise adds."""
    if isinstance(two_way, dict) and isinstance(facts_only, dict):
        lo, hi = two_way.get("ci_low"), two_way.get("ci_high")
        f_lo, f_hi = facts_only.get("ci_low"), facts_only.get("ci_high")
        if all(isinstance(x, (int, float)) for x in (lo, hi, f_lo, f_hi)):
            two_way["facts_only"] = {"ci_low": f_lo, "ci_high": f_hi}
            width = hi - lo
            two_way["noise_share"] = finite_or_none(1.0 - (f_hi - f_lo) / width) if width > 0 else None
        for key, value in two_way.items():
            if key in facts_only and key != "facts_only":
                _annotate_noise_share(value, facts_only[key])


def mechanism_samples(samples: np.ndarray, subsequent_is_last: np.ndarray) -> np.ndarray:
    """`effects.mechanism_view` of per-sample effects [fact, sample, group, layer]."""
    out = np.array(samples, dtype=np.float64, copy=True)
    out[np.asarray(subsequent_is_last, dtype=bool), :, GROUPS.index("first_subsequent")] = np.nan
    return out


def _compare_arrays(t2t: np.ndarray, s2t: np.ndarray, paired: bool, confidence: float, n_resamples: int, seed: int,
                    kind: str, t2t_subsequent_is_last: np.ndarray | None, s2t_subsequent_is_last: np.ndarray | None,
                    samples: dict[str, np.ndarray] | None) -> dict[str, Any]:
    """`compare_arrays` with facts-only resampling (`samples` None) or the two-way one."""
    t2t, s2t = np.asarray(t2t, dtype=np.float64), np.asarray(s2t, dtype=np.float64)
    if t2t.ndim != 3 or s2t.ndim != 3 or t2t.shape[1:] != s2t.shape[1:] or t2t.shape[1] != len(GROUPS):
        raise ValueError(f"effects must be [fact, {len(GROUPS)} groups, layer] with the same layers in both arms; "
                         f"got {t2t.shape} and {s2t.shape}")
    if paired and t2t.shape != s2t.shape:
        raise ValueError(f"paired arms need the same facts; got {t2t.shape[0]} and {s2t.shape[0]} facts")
    if min(t2t.shape[0], s2t.shape[0]) == 0:
        raise ValueError("a comparison needs at least one fact in each arm")
    data = {"t2t": t2t, "s2t": s2t}
    overlap = {"t2t": t2t_subsequent_is_last, "s2t": s2t_subsequent_is_last}
    mech = {arm: x if overlap[arm] is None else mechanism_view(x, overlap[arm]) for arm, x in data.items()}
    weights = {arm: resample_weights(x.shape[0], n_resamples, stream(seed, arm, kind)) for arm, x in data.items()}
    if samples is not None:  # one noise stream per kind (and sample count), shared by both arms
        noise = {arm: resample_weights(x.shape[1], n_resamples, stream(seed, "noise", kind, x.shape[1]))
                 for arm, x in samples.items()}
        mech_samples = {arm: x if overlap[arm] is None else mechanism_samples(x, overlap[arm])
                        for arm, x in samples.items()}

    def means(arm: str, mechanism: bool, w: np.ndarray) -> np.ndarray:
        if samples is None:
            return resampled_means(mech[arm] if mechanism else data[arm], w)
        return two_way_means(mech_samples[arm] if mechanism else samples[arm], w, noise[arm])

    boot = {arm: means(arm, False, weights[arm]) for arm in data}
    mboot = {arm: means(arm, True, weights[arm]) for arm in data}
    if paired:  # the paired statistics draw the same facts in both arms
        joint = resample_weights(t2t.shape[0], n_resamples, stream(seed, "paired", kind))
        jboot = {arm: means(arm, False, joint) for arm in data}
        jmboot = {arm: means(arm, True, joint) for arm in data}
    else:
        jboot, jmboot = boot, mboot
    mean = {arm: quiet_nanmean(x) for arm, x in data.items()}
    grid = {arm: quiet_nanmean(x) for arm, x in mech.items()}
    cells = mechanism_cells(grid["t2t"], grid["s2t"])
    arms = {arm: arm_statistics(data[arm], mech[arm], boot[arm], mboot[arm], confidence, n_resamples, seed, cells)
            for arm in data}
    groups: dict[str, Any] = {}
    for g, group in enumerate(GROUPS):  # the band is over the layers of one group
        groups[group] = {"difference": paired_difference(t2t[:, g], s2t[:, g], confidence, n_resamples, seed)
                         if paired else _unpaired_difference(mean["t2t"][g], mean["s2t"][g], jboot["t2t"][:, g],
                                                             jboot["s2t"][:, g], confidence)}
        groups[group]["peak_ratio"] = _ratio(
            np.nanmax(mean["s2t"][g]) if np.isfinite(mean["s2t"][g]).any() else np.nan,
            np.nanmax(mean["t2t"][g]) if np.isfinite(mean["t2t"][g]).any() else np.nan,
            _grid_max(jboot["s2t"], (group,)), _grid_max(jboot["t2t"], (group,)), confidence)
    entropy = {arm: normalised_entropy(grid[arm][cells]) for arm in data}
    entropy_boot = {arm: normalised_entropy(jmboot[arm][:, cells]) for arm in data}
    e_diff = float(entropy["s2t"] - entropy["t2t"])
    e_lo, e_hi = basic_ci(e_diff, entropy_boot["s2t"] - entropy_boot["t2t"], confidence)
    return {
        "paired": paired,
        "n_facts": {"t2t": int(t2t.shape[0]), "s2t": int(s2t.shape[0])},
        "num_layers": int(t2t.shape[2]),
        "arms": arms,
        "groups": groups,
        "overall_peak_ratio": _ratio(_grid_max(grid["s2t"], MECHANISM_GROUPS), _grid_max(grid["t2t"], MECHANISM_GROUPS),
                                     _grid_max(jmboot["s2t"], MECHANISM_GROUPS),
                                     _grid_max(jmboot["t2t"], MECHANISM_GROUPS), confidence),
        "entropy_difference": _interval(
            e_diff, e_lo, e_hi,
            bootstrap_bias=finite_or_none(np.nanmean(entropy_boot["s2t"] - entropy_boot["t2t"]) - e_diff)),
    }


def split_from_manifest(manifest_path: Path, facts_fingerprint: str) -> dict[str, list[str]]:
    """The embedded speech-text model's training and held-out facts of the fact file `facts_fingerprint`, as known_id
    strings: {"train": [...], "held_out": [...]}. Empty when the manifest names no source with this fingerprint (its
    speech knowledge of training facts was learned by distillation, so the two are compared separately)."""
    manifest = json.loads(Path(manifest_path).read_text())
    sources = [name for name, fp in manifest.get("facts_fingerprints", {}).items() if fp == facts_fingerprint]
    if not sources:
        log.info("%s: no source with facts fingerprint %s...; no train/held-out split", manifest_path,
                 facts_fingerprint[:12])
        return {}
    out: dict[str, list[str]] = {}
    for name, field in (("train", "train_facts"), ("held_out", "held_out_facts")):
        ids = []
        for key in manifest.get(field, []):
            source, _, known_id = str(key).partition(":")
            if source in sources:
                ids.append(known_id)
        out[name] = ids
    if not any(out.values()):
        log.info("%s lists no facts of source %s; no train/held-out split", manifest_path, ", ".join(sources))
        return {}
    return out


def _load_pair(t2t_dir: Path, s2t_dir: Path):
    """Both runs' settings, checked: run folders, the right arms, the same fact file."""
    t_set, s_set = load_settings(t2t_dir), load_settings(s2t_dir)
    for given, settings, want in ((t2t_dir, t_set, "t2t"), (s2t_dir, s_set, "s2t")):
        if settings.arm != want:
            raise ResultsFolderError(f"--{want} {given} is a {ARM_LABELS[settings.arm]} run (arm {settings.arm!r}); "
                                     f"pass {'an' if want == 's2t' else 'a'} {ARM_LABELS[want]} run folder.")
    if t_set.facts_fingerprint != s_set.facts_fingerprint:
        raise ResultsFolderError(
            f"The runs use different fact files (fingerprints {t_set.facts_fingerprint[:12]}... and "
            f"{s_set.facts_fingerprint[:12]}...): facts cannot be paired. Run both arms on the same --facts.")
    return t_set, s_set


def _select(effects: np.ndarray, ids: Sequence[Any], wanted: Sequence[str]) -> np.ndarray:
    index = {str(i): k for k, i in enumerate(ids)}
    return effects[[index[w] for w in wanted]] if wanted else effects[:0]


def default_out_dir(t2t_dir: Path, s2t_dir: Path) -> Path:
    """`<profile>/comparison` when the runs live in `<profile>/runs/` (the pipeline's layout, where verify.py looks),
    else `<parent of the T->T run>/comparison/<t2t folder>_vs_<s2t folder>`."""
    t2t_dir, s2t_dir = Path(t2t_dir), Path(s2t_dir)
    if t2t_dir.parent.name == "runs" and t2t_dir.parent == s2t_dir.parent:
        return t2t_dir.parent.parent / COMPARISON_DIR
    return t2t_dir.parent / COMPARISON_DIR / f"{t2t_dir.name}_vs_{s2t_dir.name}"


def _fact_sets(fe_t: Any, fe_s: Any, subsets: Mapping[str, list[str]]) -> dict[str, tuple[list[str], list[str], bool]]:
    """The fact sets of one kind: name -> (T->T ids, S->T ids, paired). 'both' (traced in both; paired), 'own' (each
    arm's own traced facts; unpaired), and each named subset intersected with 'both' (paired)."""
    ids_t, ids_s = [str(i) for i in fe_t.known_ids], [str(i) for i in fe_s.known_ids]
    both = [i for i in ids_t if i in set(ids_s)]
    sets = {"both": (both, both, True), "own": (ids_t, ids_s, False)}
    for name, ids in subsets.items():
        chosen = [i for i in both if i in set(ids)]
        sets[name] = (chosen, chosen, True)
    return sets


def compare_kinds(t2t_dir: Path, s2t_dir: Path, kinds: Sequence[str], metric: str,
                  subsets: Mapping[str, list[str]], **boot: Any) -> tuple[dict, dict, dict]:
    """Every kind's statistics on every fact set: (results[set][kind], fact_sets[set][kind], traced ids per kind)."""
    results: dict[str, dict[str, Any]] = {}
    fact_sets: dict[str, dict[str, Any]] = {}
    traced: dict[str, tuple[int, int]] = {}
    for kind in kinds:
        fe_t, fe_s = fact_effects(t2t_dir, kind, metric), fact_effects(s2t_dir, kind, metric)
        if not len(fe_t.known_ids) or not len(fe_s.known_ids):
            log.warning("kind %s: no finished traces in %s; skipped", kind,
                        " and ".join(str(d) for d, fe in ((t2t_dir, fe_t), (s2t_dir, fe_s)) if not len(fe.known_ids)))
            continue
        if fe_t.effects.shape[2] != fe_s.effects.shape[2]:
            raise ResultsFolderError(f"kind {kind}: the runs have different numbers of layers "
                                     f"({fe_t.effects.shape[2]} and {fe_s.effects.shape[2]}); same model needed.")
        traced[kind] = (len(fe_t.known_ids), len(fe_s.known_ids))
        ids_t, ids_s = [str(i) for i in fe_t.known_ids], [str(i) for i in fe_s.known_ids]
        for name, (a, b, paired) in _fact_sets(fe_t, fe_s, subsets).items():
            fact_sets.setdefault(name, {})[kind] = {"t2t": a, "s2t": b, "paired": paired}
            if not a or not b:
                log.info("set %s, kind %s: no facts; skipped", name, kind)
                continue
            per_sample = fe_t.samples is not None and fe_s.samples is not None
            results.setdefault(name, {})[kind] = compare_arrays(
                _select(fe_t.effects, ids_t, a), _select(fe_s.effects, ids_s, b), paired, **boot, kind=kind,
                t2t_subsequent_is_last=_select(fe_t.subsequent_is_last, ids_t, a),
                s2t_subsequent_is_last=_select(fe_s.subsequent_is_last, ids_s, b),
                t2t_samples=_select(fe_t.samples, ids_t, a) if per_sample else None,
                s2t_samples=_select(fe_s.samples, ids_s, b) if per_sample else None)
    if not traced:
        raise ResultsFolderError(f"No kind of {', '.join(kinds)} has finished traces in both runs.")
    if "both" not in results:
        first = traced[next(iter(traced))]
        raise ResultsFolderError(f"The runs share no traced facts (T->T traced {first[0]}, S->T {first[1]}): "
                                 "nothing to pair.")
    return results, fact_sets, traced


def _sets_section(fact_sets: Mapping[str, Any]) -> dict[str, Any]:
    return {name: {"paired": name != "own",
                   "description": _SET_DESCRIPTIONS.get(name, f"subset {name!r} of the facts known in both"),
                   "n_facts": {k: {"t2t": len(v["t2t"]), "s2t": len(v["s2t"])} for k, v in per.items()},
                   "known_ids": {k: v["t2t"] if name != "own" else {"t2t": v["t2t"], "s2t": v["s2t"]}
                                 for k, v in per.items()}}
            for name, per in fact_sets.items()}


BOOTSTRAP_METHODS = {
    "unit": "fact", "curves": f"{CI_METHOD} (bootstrap.bootstrap_mean_ci)",
    "difference": "paired sets: mean of per-fact differences, BCa; 'own': percentile of independent resamples",
    "band": BAND_METHOD, "peak_layers": "percentile interval of the argmax layer over the resamples",
    "peaks_ratios_entropy": "basic (reverse-percentile) intervals over the same resamples (bias-corrected for max "
                            "and entropy statistics)",
}
DIFFUSENESS = ("normalised entropy of the positive AIE mass over the (group, layer) grid of the mechanism groups "
               "(all but the last token): 0 = one cell, 1 = uniform")


def compare_runs(
    t2t_dir: Path,
    s2t_dir: Path,
    out_dir: Path | None = None,
    kinds: Sequence[str] = KINDS,
    metric: str = "prob",
    subsets: Mapping[str, Iterable[Any]] | None = None,
    confidence: float = CONFIDENCE,
    n_resamples: int = N_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    normalised_bins: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """Compare a T->T and an S->T run folder; write comparison.json, comparison.md and summary.md to `out_dir`
    (default `default_out_dir`). Returns the JSON document (figures: `artifact.figures.comparison.plot_comparison`)."""
    t2t_dir, s2t_dir = Path(t2t_dir), Path(s2t_dir)
    t_set, s_set = _load_pair(t2t_dir, s2t_dir)
    out_dir = Path(out_dir) if out_dir is not None else default_out_dir(t2t_dir, s2t_dir)
    boot = {"confidence": confidence, "n_resamples": n_resamples, "seed": seed}
    subsets = {name: [str(i) for i in ids] for name, ids in (subsets or {}).items()}
    for reserved in ("both", "own"):
        if reserved in subsets:
            raise ValueError(f"subset name {reserved!r} is reserved; choose another")
    results, fact_sets, traced = compare_kinds(t2t_dir, s2t_dir, kinds, metric, subsets, **boot)
    document: dict[str, Any] = {
        "t2t_run": str(t2t_dir), "s2t_run": str(s2t_dir),
        "settings": {"t2t": t_set.to_dict(), "s2t": s_set.to_dict()},
        "last_token_meaning": dict(LAST_TOKEN_MEANING),
        "metric": metric, "kinds": list(traced), "groups": list(GROUPS),
        "mechanism_groups": list(MECHANISM_GROUPS),
        "bootstrap": {**BOOTSTRAP_METHODS, **boot},
        "diffuseness": DIFFUSENESS,
        "sets": _sets_section(fact_sets),
        "results": results,
    }
    bins = normalised_bins or (normalised.SUBJECT_BINS, normalised.REST_BINS)
    document["normalised"] = normalised.compare_normalised(
        t2t_dir, s2t_dir, t_set, s_set, list(traced), metric,
        {name: fact_sets[name] for name in ("both", "own") if name in fact_sets}, bins, **boot)
    document["claims"] = claims.evaluate_claims(document)
    document["claims_by_set"] = claims.claims_by_set(document)
    document["claims_rules"] = claims.rules_section()
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out_dir / COMPARISON_FILE, document)
    _write_text(out_dir / COMPARISON_MD, comparison_markdown(document))
    _write_text(out_dir / SUMMARY_FILE, claims.summary_markdown(document))
    return document


_SET_DESCRIPTIONS = {
    "both": "facts known (traced) in both arms; paired",
    "own": "each arm on its own known set (T->T on Known-t2t, S->T on Known-s2t); unpaired",
    "train": "facts the embedded speech-text model was trained (distilled) on, known in both; paired",
    "held_out": "facts held out from the embedded speech-text model's training, known in both; paired",
}


def _write_text(path: Path, text: str) -> None:
    write_atomic(path, lambda handle: handle.write(text.encode()))


__all__ = [
    "BAND_METHOD", "MECHANISM_GROUPS", "arm_statistics", "basic_ci", "compare_arrays", "compare_runs",
    "comparison_markdown", "default_out_dir", "mechanism_cells", "normalised_entropy", "paired_difference",
    "percentile_ci", "resample_weights", "resampled_means", "simultaneous_band", "split_from_manifest",
]
