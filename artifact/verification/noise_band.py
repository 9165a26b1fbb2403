"""The other-seed tier from one run's own noise samples (issue 28): no replicate is needed to calibrate it.

A run and an honest rerun with another seed trace the same facts; they differ only by their noise draws. With
per-sample streams (`tracing/corruption.py`) each run's S noise samples are independent draws, so each gives S
per-sample AIE curves (per arm, kind, metric and token group: the mean over the paired facts of one sample's
effects), and under "same facts, other noise" the 2S curves of both runs are exchangeable. The test is an exact
permutation max-T over them:

- per layer a two-sample t of the runs' per-sample curves (pooled variance, 2S - 2 degrees of freedom);
- the statistic of a split is the maximum |t| over every layer of every curve of the family: both arms, every kind,
  metric and token group together. One split of the samples applies to the whole family, because sample s of a run
  is one noise stream for every fact, kind and group (they are not independent of each other);
- the critical value c is the 1 - alpha quantile of that maximum over all C(2S, S) splits (a seeded random subset
  when there are more than MAX_SPLITS); a curve FAILs when its own max |t| exceeds c.

So the chance that an honest other-seed run FAILs any of these checks is at most alpha (exact for the permutation
distribution; the family-wise false-FAIL rate of the band checks). With too few samples the test cannot reject
(the smallest p-value of an exact test is 2 / C(2S, S): 1/3 at S = 2, 1/10 at S = 3): every check then says SKIP
with the reason. Replicates only validate it (tests/verification/test_noise_band.py, and REPRODUCE.md).
"""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from artifact.core.names import GROUPS
from artifact.verification.records import ALPHA, FAIL, PASS, SKIP, Check

MAX_SPLITS = 5000  # beyond this many splits of the 2S samples, a seeded random subset of them
SPLIT_SEED = 28


@dataclass(frozen=True)
class Member:
    """One curve of the family: the runs' per-sample curves [sample, layer] of one arm, kind, metric and group."""

    arm: str
    kind: str
    metric: str
    group: str
    regen: np.ndarray  # [S_r, layer]
    expected: np.ndarray  # [S_e, layer]


def sample_curves(samples: np.ndarray, group: str) -> np.ndarray:
    """[sample, layer] per-sample AIE curves of one group from per-sample effects [fact, sample, group, layer]."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(np.asarray(samples, dtype=np.float64)[:, :, GROUPS.index(group)], axis=0)


def sample_splits(total: int, first: int) -> np.ndarray:
    """[split, total] bool: which of the pooled samples form the first group; row 0 is the observed split (the
    regenerated run's samples first). Every split when there are at most MAX_SPLITS, else a seeded random subset."""
    count = math.comb(total, first)
    if count <= MAX_SPLITS:
        rows = [np.isin(np.arange(total), combo) for combo in itertools.combinations(range(total), first)]
        return np.array(rows)
    rng = np.random.default_rng(SPLIT_SEED)
    rows = [np.arange(total) < first]
    rows += [np.isin(np.arange(total), rng.choice(total, first, replace=False)) for _ in range(MAX_SPLITS - 1)]
    return np.array(rows)


def split_t(pooled: np.ndarray, splits: np.ndarray) -> np.ndarray:
    """[split, layer] |two-sample t| (pooled variance) of pooled [total, layer] curves under each split; NaN where a
    split's pooled variance is zero or undefined."""
    a, b = splits.sum(axis=1)[:, None], (~splits).sum(axis=1)[:, None]
    x = np.nan_to_num(pooled)
    wa, wb = splits.astype(np.float64), (~splits).astype(np.float64)
    mean_a, mean_b = (wa @ x) / a, (wb @ x) / b
    ss = (wa @ (x * x)) - a * mean_a ** 2 + (wb @ (x * x)) - b * mean_b ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        se = np.sqrt(np.maximum(ss, 0.0) / (a + b - 2) * (1 / a + 1 / b))
        t = np.abs(mean_a - mean_b) / se
    usable = np.all(np.isfinite(pooled), axis=0)[None, :] & (se > 1e-12 * (1 + np.abs(mean_a) + np.abs(mean_b)))
    return np.where(usable, t, np.nan)


def powerless_reason(s_r: int, s_e: int, alpha: float = ALPHA) -> str:
    """Why an exact permutation test over S_r + S_e sample sets could never reject at `alpha`, or ''. A split and
    its complement give the same statistic when S_r == S_e, so the smallest p-value is then 2 / C(2S, S)."""
    count = math.comb(s_r + s_e, s_r)
    smallest = (2 if s_r == s_e else 1) / count
    if s_r < 2 or s_e < 2 or (count <= MAX_SPLITS and smallest > alpha):
        return (f"{s_r} and {s_e} noise samples give {count} splits; the smallest p-value of the exact test is "
                f"{smallest:.3g} > {alpha}: it could never FAIL (record and rerun with at least 4 noise samples "
                "per cell)")
    return ""


def family_test(members: Sequence[Member], alpha: float = ALPHA) -> dict:
    """The permutation max-T over the whole family: {"critical": c, "p_value", "splits", "samples": (S_r, S_e),
    "observed": [member] max |t| (NaN: no usable layer), "layer": [member] where, "powerless": reason or None}."""
    s_r, s_e = {m.regen.shape[0] for m in members}, {m.expected.shape[0] for m in members}
    if len(s_r) != 1 or len(s_e) != 1:
        raise ValueError("every curve of a run must have the same number of noise samples")
    S_r, S_e = s_r.pop(), s_e.pop()
    why = powerless_reason(S_r, S_e, alpha)
    if why:
        return {"powerless": why, "samples": (S_r, S_e), "splits": math.comb(S_r + S_e, S_r)}
    splits = sample_splits(S_r + S_e, S_r)
    per_member = [split_t(np.concatenate([m.regen, m.expected]), splits) for m in members]  # [split, layer] each
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        maxima = np.stack([np.nanmax(t, axis=1) for t in per_member], axis=1)  # [split, member]
        family = np.nanmax(maxima, axis=1)  # [split]
    critical = float(np.nanquantile(family, 1 - alpha, method="higher"))
    observed = maxima[0]
    layers = [int(np.nanargmax(t[0])) if np.isfinite(t[0]).any() else None for t in per_member]
    return {"critical": critical, "p_value": float(np.mean(family >= family[0])), "splits": len(splits),
            "samples": (S_r, S_e), "observed": observed, "layer": layers, "powerless": None}


def noise_band_checks(members: Sequence[Member], alpha: float = ALPHA) -> list[Check]:
    """One `noise_band` check per curve of the family (PASS / FAIL against the family's critical value, SKIP when
    the test has no power), from `family_test`."""
    if not members:
        return []
    result = family_test(members, alpha)
    out = []
    for i, m in enumerate(members):
        base = {"arm": m.arm, "kind": m.kind, "metric": m.metric, "group": m.group}
        if result["powerless"]:
            out.append(Check("noise_band", SKIP, **base, detail=result["powerless"]))
            continue
        value = result["observed"][i]
        if not math.isfinite(value):
            out.append(Check("noise_band", SKIP, **base, detail="no layer where the noise samples vary: nothing to "
                                                                "test"))
            continue
        S_r, S_e = result["samples"]
        out.append(Check(
            "noise_band", PASS if value <= result["critical"] else FAIL, **base, observed=float(value),
            tolerance=result["critical"],
            detail=(f"max over layers of |t| between the runs' per-sample curves (at layer {result['layer'][i]}; "
                    f"{S_r} + {S_e} noise samples, {S_r + S_e - 2} df); critical value of the permutation max-T over "
                    f"all {len(members)} curves together ({result['splits']} splits; family-wise false-FAIL rate "
                    f"{alpha}; family p = {result['p_value']:.3g})")))
    return out


def members_of(regen, expected, metrics: Sequence[str], groups: Sequence[str]) -> list[Member]:
    """The family's curves of one arm (`ArmData` of the run and of the profile): every kind and metric both sides
    kept per-sample effects for, over the facts present on both sides; [] when either side has none."""
    out = []
    for kind in expected.kinds():
        if kind not in regen.fact_ids:
            continue
        r_index = {i: n for n, i in enumerate(regen.fact_ids[kind])}
        ids = [i for i in expected.fact_ids[kind] if i in r_index]
        e_index = {i: n for n, i in enumerate(expected.fact_ids[kind])}
        for metric in metrics:
            name = f"{kind}_{metric}"
            if not ids or name not in regen.samples or name not in expected.samples:
                continue
            r = regen.samples[name][[r_index[i] for i in ids]]
            e = expected.samples[name][[e_index[i] for i in ids]]
            out += [Member(regen.arm, kind, metric, group, sample_curves(r, group), sample_curves(e, group))
                    for group in groups]
    return out
