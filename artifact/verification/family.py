"""One family-wise false-FAIL rate over every statistical check of the other-seed tier (issue 28, part 4).

When the run and the profile both kept per-sample effects (traces with per-sample noise streams), each run is S
noise samples, and sample s of a run is one noise stream for every fact, kind, group and for that run's carry-over
patching. Another seed changes only the noise, so the 2S pooled sample sets of both runs are exchangeable, whole.
Every statistical check is judged on one permutation distribution over splits of those sets:

- a split takes S_r of the pooled sample sets as "run A" and the rest as "run B" (all C(2S, S) splits, or a seeded
  subset of `noise_band.MAX_SPLITS`; row 0 is the observed split: the regenerated run against the profile's);
- under each split every check's statistic is computed from the two groups' means, as the check computes it from
  two runs (`Statistic`, larger = further apart): the bands' max |t| over layers (`noise_band`), 1 - Pearson r of
  the AIE curves (`curve_correlation`), the shift of their argmax layers (`peak_layer`), 1 - the mean centred
  per-fact map correlation (`fact_correlation`), the carry-over patching curves' max |t| (`carryover_band`), and
  each claim condition's |t| between the runs' per-sample values of it (`claim_statistic`: the condition computed
  from each sample set's effects, as the claims compute it from a run's);
- max-T on a common scale: each statistic is standardised by its own permutation distribution (z = (T - mean) / SD
  over the splits, a function of the pooled data alone, so the same under every relabelling; the SD of a discrete
  statistic is floored at its step, 1 layer for a peak shift: a peak that moves by one layer in 4 of 252 splits
  would otherwise reach z = 8 and set the critical value for every check); the family's statistic
  of a split is the largest z over all checks; the critical value c is the value that at most floor(alpha x N) of
  the N splits exceed. A check FAILs when its observed z exceeds c: under exchangeability the chance that an honest
  other-seed run FAILs any check of the family is at most alpha (exact with every split enumerated). Each check
  shows its statistic against its own threshold mean + c x SD, its own permutation p-value and the family-adjusted
  one (the share of splits whose family maximum reaches its z);
- a check that could not FAIL says SKIP with the reason, never PASS: its statistic is undefined (a flat or NaN
  curve), or its threshold lies beyond the largest value the statistic can take (a correlation's 2, a peak shift of
  all the layers; the power.py rules on the permutation scale). A statistic with one value under every split (a
  sharp peak that no split moves) PASSes: the observed split is one of them, and any other value would have
  stood out;
- a claim's decided verdict flip (supported <-> not supported) FAILs when one of its conditions' statistics FAILs
  the family; otherwise it is INFO: the flip is within the noise the runs' own samples show (`merge_claims`).

Checks without noise (Known and traced sets, knockout and lens cells, files, identity) are not in the family; the
replicate-calibrated versions of the checks above are not run beside it (no double judging).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

import numpy as np

from artifact.analysis.compare import mechanism_cells, normalised_entropy
from artifact.core.names import FURTHER_GROUP, GROUPS, MECHANISM_GROUPS, NEAR_SUBJECT_GROUPS
from artifact.verification.noise_band import split_t
from artifact.verification.records import ALPHA, FAIL, INFO, PASS, SKIP, Check
from artifact.verification.statistics import pearson_rows

FLAT = 1e-12  # a statistic whose SD over the splits is at or below this (relative) takes one value: no power


@dataclass(frozen=True)
class Statistic:
    """One check of the family: its labels and its statistic under every split ([split], row 0 observed; larger =
    further apart; NaN where undefined). `shown` says how the report prints it: "upper" (observed <= threshold),
    "correlation" (r = 1 - statistic >= 1 - threshold), "peak" (|layer shift| <= threshold, with the two layers in
    `layers` [split, 2])."""

    check: str
    labels: dict[str, Any]
    values: np.ndarray  # [split]
    what: str
    shown: str = "upper"
    layers: np.ndarray | None = None  # [split, 2] argmax layers of run A and run B (peak_layer)
    bound: float = math.inf  # the largest value the statistic can take (2 for 1 - r; layers - 1 for a peak shift)
    resolution: float = 0.0  # the smallest step of a discrete statistic (1 layer for a peak shift): its scale's floor
    note: str = ""


@dataclass
class SplitMeans:
    """Both groups' per-fact means under every split of one arm, kind and metric, with the per-sample curves."""

    ids: list[str]
    a: np.ndarray  # [split, fact, group, layer] mean over run A's sample sets
    b: np.ndarray  # [split, fact, group, layer] mean over run B's sample sets
    pooled: np.ndarray  # [fact, sample, group, layer] the pooled sample sets (the run's first)
    subsequent_is_last: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))  # [fact]


def sample_counts(regen: Any, expected: Any) -> tuple[int, int] | None:
    """(S_r, S_e) noise samples of two `ArmData` (the same in every array of a side), or None when either side kept
    no per-sample effects or they differ between arrays."""
    counts = []
    for data in (regen, expected):
        found = {a.shape[1] for a in data.samples.values()}
        if len(found) != 1:
            return None
        counts.append(found.pop())
    return counts[0], counts[1]


def split_weights(splits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[split, sample] weights of run A (the split's True sets) and run B (the rest): means as matrix products."""
    a = splits.astype(np.float64)
    b = (~splits).astype(np.float64)
    return a / a.sum(axis=1, keepdims=True), b / b.sum(axis=1, keepdims=True)


def _split_mean(weights: np.ndarray, pooled: np.ndarray) -> np.ndarray:
    """[split, fact, group, layer] weighted means over the sample axis of pooled [fact, sample, group, layer]; NaN
    where any sample is NaN (an empty token group)."""
    missing = np.isnan(pooled).any(axis=1)
    out = np.tensordot(weights, np.nan_to_num(pooled), axes=([1], [1]))  # [split, fact, group, layer]
    out[:, missing] = np.nan
    return out


def subsequent_is_last(pooled: np.ndarray) -> np.ndarray:
    """[fact] whether a fact's first subsequent token is its last token, read from its group effects (pooled [fact,
    sample, group, layer]): then both groups hold the same position (`core.groups.token_groups`), so their values are
    bitwise equal in every sample and layer."""
    fs, last = pooled[:, :, GROUPS.index("first_subsequent")], pooled[:, :, GROUPS.index("last")]
    return np.all((fs == last) & np.isfinite(fs), axis=(1, 2))


def split_means(regen: np.ndarray, expected: np.ndarray, ids: Sequence[str], splits: np.ndarray) -> SplitMeans:
    """Both groups' means under every split from paired per-sample arrays [fact, sample, group, layer]."""
    pooled = np.concatenate([np.asarray(regen, dtype=np.float64), np.asarray(expected, dtype=np.float64)], axis=1)
    w_a, w_b = split_weights(splits)
    return SplitMeans(list(ids), _split_mean(w_a, pooled), _split_mean(w_b, pooled), pooled,
                      subsequent_is_last(pooled))


def _quiet_nanmean(x: np.ndarray, axis: int) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(x, axis=axis)


def _nanmax(x: np.ndarray, axis: Any) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmax(x, axis=axis)


def band_statistic(pooled_curves: np.ndarray, splits: np.ndarray) -> np.ndarray:
    """[split] max over layers of |two-sample t| of pooled per-sample curves [sample, layer] (noise_band's)."""
    t = split_t(pooled_curves, splits)
    return _nanmax(t, axis=1)


def curve_statistics(means: SplitMeans, splits: np.ndarray, labels: dict[str, Any], band_groups: Sequence[str],
                     shape_groups: Sequence[str]) -> list[Statistic]:
    """The statistics of one arm, kind and metric: bands, curve correlations, peaks, per-fact map correlation."""
    out = []
    for group in band_groups:
        g = GROUPS.index(group)
        curves = _quiet_nanmean(means.pooled[:, :, g], axis=0)  # [sample, layer] per-sample AIE curves
        out.append(Statistic("noise_band", {**labels, "group": group}, band_statistic(curves, splits),
                             "max over layers of |t| between the runs' per-sample AIE curves"))
    for group in shape_groups:
        g = GROUPS.index(group)
        ca, cb = _quiet_nanmean(means.a[:, :, g], axis=1), _quiet_nanmean(means.b[:, :, g], axis=1)  # [split, layer]
        out.append(Statistic("curve_correlation", {**labels, "group": group}, 1 - pearson_rows(ca, cb),
                             "Pearson r of the AIE curves over layers", shown="correlation", bound=2.0))
        finite = np.isfinite(ca).any(axis=1) & np.isfinite(cb).any(axis=1)
        pa = np.where(finite, np.argmax(np.nan_to_num(ca, nan=-np.inf), axis=1), -1)
        pb = np.where(finite, np.argmax(np.nan_to_num(cb, nan=-np.inf), axis=1), -1)
        shift = np.where(finite, np.abs(pa - pb), np.nan).astype(np.float64)
        out.append(Statistic("peak_layer", {**labels, "group": group}, shift, "argmax layer of the AIE curves",
                             shown="peak", layers=np.stack([pa, pb], axis=1), bound=float(ca.shape[1] - 1),
                             resolution=1.0))
    n, f = means.a.shape[:2]
    ca = means.a - _quiet_nanmean(means.a, axis=1)[:, None]
    cb = means.b - _quiet_nanmean(means.b, axis=1)[:, None]
    r = pearson_rows(ca.reshape(n * f, -1), cb.reshape(n * f, -1)).reshape(n, f)
    out.append(Statistic("fact_correlation", labels, 1 - _quiet_nanmean(r, axis=1),
                         f"mean over {f} facts of the Pearson r of each fact's centred [group, layer] maps",
                         shown="correlation", bound=2.0))
    return out


def _grid(effects: np.ndarray, subsequent: np.ndarray) -> np.ndarray:
    """[split, group, layer] mean over facts of [split, fact, group, layer] in the mechanism view (the first
    subsequent token blanked where it is the last token, `effects.mechanism_view`)."""
    x = np.array(effects, copy=True)
    x[:, np.asarray(subsequent, dtype=bool), GROUPS.index("first_subsequent")] = np.nan
    return _quiet_nanmean(x, axis=1)


def _grid_max(grid: np.ndarray, groups: Sequence[str]) -> np.ndarray:
    rows = [GROUPS.index(g) for g in groups]
    return _nanmax(grid[:, rows].reshape(grid.shape[0], -1), axis=1)


def condition_values(arms: Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray]]]) -> dict[str, np.ndarray]:
    """The claims' one-sided condition statistics (`analysis.claims`; point values, no CIs) under every split:
    {"<claim>/<kind>/<name>": [split]} from {arm: {kind: ([split, fact, group, layer] means, [fact]
    subsequent-is-last)}} of the fact set each claim reads ("own": each arm's facts; C2 "both": those of both arms,
    which the caller passes under arm "both_t2t" / "both_s2t")."""
    out: dict[str, np.ndarray] = {}
    if "mlp" in arms.get("t2t", {}):
        grid = _grid(*arms["t2t"]["mlp"])
        peak = _grid_max(_quiet_nanmean(arms["t2t"]["mlp"][0], axis=1), ("last_subject",))
        out["C1/mlp/last_subject_peak"] = peak
        out["C1/mlp/last_subject_minus_further"] = (_grid_max(grid, ("last_subject",))
                                                    - _grid_max(grid, (FURTHER_GROUP,)))
    for kind in arms.get("both_t2t", {}):
        if kind not in arms.get("both_s2t", {}):
            continue
        gt, gs = _grid(*arms["both_t2t"][kind]), _grid(*arms["both_s2t"][kind])
        num, den = _grid_max(gs, MECHANISM_GROUPS), _grid_max(gt, MECHANISM_GROUPS)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[f"C2/{kind}/overall_peak_ratio"] = np.where(den > 0, num / den, np.nan)
        cells = mechanism_cells(gt[0], gs[0])
        out[f"C2/{kind}/entropy_difference"] = normalised_entropy(gs[:, cells]) - normalised_entropy(gt[:, cells])
    for kind in ("mlp", "attn"):
        if kind in arms.get("s2t", {}):
            grid = _grid(*arms["s2t"][kind])
            near = _grid_max(grid, NEAR_SUBJECT_GROUPS)
            out[f"C3/{kind}/near_subject_peak"] = near
            out[f"C3/{kind}/near_subject_minus_further"] = near - _grid_max(grid, (FURTHER_GROUP,))
    return out


def claim_statistics(per_sample: Mapping[str, np.ndarray], point_a: Mapping[str, float],
                     point_b: Mapping[str, float], splits: np.ndarray) -> list[Statistic]:
    """Each claim condition as a two-sample |t| of its per-noise-sample values ({key: [pooled sample]}, the
    condition computed from one sample set's effects, the run's sets first) under every split: studentised like the
    bands, so a condition that moved beyond the noise stands out of the permutation distribution (the plain
    |A - B| of the split means cannot: mixed splits take a share of any shift). `point_a` / `point_b`: the condition
    from all of each run's samples (what comparison.json reports), shown in the detail."""
    out = []
    for key, values in per_sample.items():
        t = split_t(np.asarray(values, dtype=np.float64)[:, None], splits)[:, 0]
        out.append(Statistic("claim_statistic", {"group": key}, t,
                             f"|t| of {key} between the runs' per-noise-sample values ({splits.shape[1] - 2} df; "
                             f"from all samples: run {point_a.get(key, math.nan):.4g}, profile "
                             f"{point_b.get(key, math.nan):.4g})"))
    return out


def judge(statistics: Sequence[Statistic], alpha: float = ALPHA, splits_note: str = "") -> list[Check]:
    """Max-T over the family on a common scale (module docstring): one Check per statistic."""
    if not statistics:
        return []
    values = np.stack([np.asarray(s.values, dtype=np.float64) for s in statistics], axis=1)  # [split, check]
    n = values.shape[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean, sd = np.nanmean(values, axis=0), np.nanstd(values, axis=0)
    flat = ~(sd > FLAT * (1 + np.abs(np.nan_to_num(mean))))
    sd = np.maximum(sd, [s.resolution for s in statistics])  # a discrete statistic moves by at least its step
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(flat[None, :] | ~np.isfinite(values), -np.inf, (values - mean) / np.where(flat, 1.0, sd))
    family = z.max(axis=1)  # [split]
    allowed = math.floor(alpha * n)  # splits that may exceed the critical value
    critical = float(np.sort(family)[::-1][allowed]) if allowed < n else -np.inf
    checks = []
    for j, stat in enumerate(statistics):
        observed = float(values[0, j])
        threshold = float(mean[j] + critical * sd[j]) if not flat[j] else math.nan
        if flat[j] and math.isfinite(observed):  # the observed split is one of them: as close as any split
            checks.append(_shown(stat, PASS, observed, observed, f"{stat.what}: the same value {observed:.4g} under "
                                 f"every one of the {n} splits of the noise samples, the observed runs' included: "
                                 "they agree as closely as the noise lets any two runs agree (not in the family's "
                                 "maximum)"))
            continue
        if not math.isfinite(observed):
            why = "undefined for the observed runs (a flat or NaN curve)"
        elif threshold >= stat.bound:
            why = (f"no power: the family's threshold {threshold:.4g} lies at or beyond the largest value the "
                   f"statistic can take ({stat.bound:g}), so it could never FAIL")
        else:
            why = ""
        p_own = float(np.mean(np.nan_to_num(values[:, j], nan=-np.inf) >= observed)) if math.isfinite(observed) \
            else math.nan
        p_family = float(np.mean(family >= z[0, j])) if math.isfinite(z[0, j]) else math.nan
        text = (f"{stat.what}; family max-T over {len(statistics)} checks and {n} splits{splits_note}: critical z "
                f"{critical:.3g} (at most {allowed} of {n} splits above it; family-wise false-FAIL rate {alpha}), "
                f"this check's z {z[0, j]:.3g}, {_threshold_text(stat, threshold)}; p = {p_own:.3g} (own), "
                f"{p_family:.3g} (family-adjusted)" + (f"; {stat.note}" if stat.note else ""))
        if why:
            checks.append(Check(stat.check, SKIP, **stat.labels, detail=f"{why}; {text}"))
            continue
        verdict = FAIL if z[0, j] > critical else PASS
        checks.append(_shown(stat, verdict, observed, threshold, text))
    return checks


def _threshold_text(stat: Statistic, threshold: float) -> str:
    """The check's own threshold (mean + critical z x SD of its statistic over the splits) in its units."""
    if stat.shown == "correlation":
        return f"FAIL below r = {1 - threshold:.4g} (mean + z x SD of 1 - r over the splits)"
    if stat.shown == "peak":
        return f"FAIL beyond a shift of {threshold:.3g} layers (mean + z x SD over the splits)"
    return f"FAIL above {threshold:.4g} (mean + z x SD over the splits)"


def _shown(stat: Statistic, verdict: str, observed: float, threshold: float, text: str) -> Check:
    """The check record in the statistic's own units (see `Statistic.shown`)."""
    if stat.shown == "correlation":
        return Check(stat.check, verdict, **stat.labels, observed=1 - observed, expected=1.0,
                     tolerance=1 - threshold, detail=text)
    if stat.shown == "peak" and stat.layers is not None:
        return Check(stat.check, verdict, **stat.labels, observed=int(stat.layers[0, 0]),
                     expected=int(stat.layers[0, 1]), tolerance=threshold, detail=text)
    return Check(stat.check, verdict, **stat.labels, observed=observed, expected=0.0, tolerance=threshold,
                 detail=text)


def merge_claims(claim_checks: Sequence[Check], family: Sequence[Check]) -> list[Check]:
    """The claim verdict checks (`checks.check_claims`) judged with the family: opposite decided verdicts FAIL only
    when one of the claim's condition statistics (`claim_statistic` "<claim>/...") FAILs the family (the flip is
    more than the runs' own noise gives); otherwise they are INFO, naming the conditions' p-values. Other verdicts
    stay as `check_claims` made them."""
    out = []
    for check in claim_checks:
        conditions = [c for c in family if c.check == "claim_statistic" and str(c.group).startswith(f"{check.group}/")]
        opposite = {check.observed, check.expected} == {"supported", "not supported"}
        if not opposite or not conditions:
            out.append(check)
            continue
        failed = [c.group for c in conditions if c.verdict == FAIL]
        if failed:
            out.append(replace(check, detail=check.detail + f"; beyond the runs' own noise: {', '.join(failed)} "
                                                            "FAIL the family"))
        else:
            out.append(replace(check, verdict=INFO, detail=check.detail + " (opposite verdicts, but none of the "
                               f"claim's {len(conditions)} condition statistics FAILs the family: within the noise the "
                               "runs' own samples show)"))
    return out
