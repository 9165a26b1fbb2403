"""The family's statistics (family.py) from what verify loads: both runs' per-sample effects of every arm, kind and
metric, the carry-over patching values per noise sample, and the claims' conditions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from artifact.verification.carryover import EXPECTED_DIR, STACKED_FILE, carryover_results, stacked_arrays
from artifact.verification.family import (
    SplitMeans,
    Statistic,
    band_statistic,
    claim_statistics,
    condition_values,
    curve_statistics,
    judge,
    sample_counts,
    split_means,
)
from artifact.verification.load import ArmData
from artifact.verification.noise_band import MAX_SPLITS, powerless_reason, sample_splits
from artifact.verification.records import ALPHA, Check


def paired_samples(regen: ArmData, expected: ArmData, name: str, kind: str) -> tuple[list[str], np.ndarray,
                                                                                      np.ndarray]:
    """Facts of `kind` on both sides (expected order) and their per-sample arrays [fact, sample, group, layer]."""
    r_index = {i: n for n, i in enumerate(regen.fact_ids[kind])}
    ids = [i for i in expected.fact_ids[kind] if i in r_index]
    e_index = {i: n for n, i in enumerate(expected.fact_ids[kind])}
    return (ids, regen.samples[name][[r_index[i] for i in ids]],
            expected.samples[name][[e_index[i] for i in ids]])


def family_samples(arms: Mapping[str, tuple[ArmData, ArmData]]) -> tuple[tuple[int, int] | None, str]:
    """The noise samples (S_r, S_e) every arm's per-sample arrays share, or (None, why the family cannot run)."""
    counts = set()
    for arm, (regen, expected) in arms.items():
        found = sample_counts(regen, expected)
        if found is None:
            return None, (f"{arm}: the run or the profile kept no per-sample effects (traces from before per-sample "
                          "noise streams, or a profile recorded before): the replicate-calibrated checks judge it")
        counts.add(found)
    if len(counts) != 1:
        return None, f"the arms kept different numbers of noise samples {sorted(counts)}"
    s_r, s_e = counts.pop()
    why = powerless_reason(s_r, s_e)
    return (None, why) if why else ((s_r, s_e), "")


def carryover_statistics(regen: Mapping[str, np.ndarray], expected: Mapping[str, np.ndarray], plan: Mapping[str, Any],
                         splits: np.ndarray) -> list[Statistic]:
    """Each patching curve (direction/kind/position, mean IE over facts, prob) as a band of its per-sample curves:
    max over layers of |t| (stacked carry-over arrays with `patch_prob_per_sample` [fact, d, k, p, layer, sample]
    and `low_prob_per_sample` [fact, d, sample] on both sides; none otherwise)."""
    need = ("patch_prob_per_sample", "low_prob_per_sample")
    if not all(k in regen and k in expected for k in need):
        return []
    if regen["patch_prob_per_sample"].shape[-1] + expected["patch_prob_per_sample"].shape[-1] != splits.shape[1]:
        return []  # other sample counts than the traces': not one noise stream per sample set with them
    sides = []
    for arrays in (regen, expected):
        ie = arrays["patch_prob_per_sample"] - arrays["low_prob_per_sample"][:, :, None, None, None, :]
        with np.errstate(invalid="ignore"):
            sides.append(np.nanmean(ie, axis=0))  # [d, k, p, layer, sample]
    out = []
    for d, direction in enumerate(plan["directions"]):
        for k, kind in enumerate(plan["patch_kinds"]):
            for p, position in enumerate(plan["positions"]):
                pooled = np.concatenate([sides[0][d, k, p].T, sides[1][d, k, p].T])  # [sample, layer]
                out.append(Statistic("carryover_band", {"group": f"{direction}/{kind}/{position}"},
                                     band_statistic(pooled, splits),
                                     f"patching {direction}/{kind}/{position}: max over layers of |t| between the "
                                     "runs' per-sample mean IE curves"))
    return out


def family_checks(arms: Mapping[str, tuple[ArmData, ArmData]], metrics: Sequence[str], band_groups: Sequence[str],
                  shape_groups: Sequence[str], samples: tuple[int, int],
                  carryover: tuple[Mapping[str, np.ndarray], Mapping[str, np.ndarray], Mapping[str, Any]] | None = None,
                  claims: bool = True, claims_metric: str = "prob",
                  alpha: float = ALPHA) -> list[Check]:
    """Every statistic of the family under one set of splits, judged together (`family.judge`). `arms`: {arm:
    (regenerated, expected)}; `carryover`: (regenerated, expected stacked arrays, plan) when both have carry-over
    per-sample values; `claims`: add the claims' condition statistics (metric `claims_metric`)."""
    s_r, s_e = samples
    splits = sample_splits(s_r + s_e, s_r)
    statistics: list[Statistic] = []
    means: dict[str, dict[str, SplitMeans]] = {}
    for arm, (regen, expected) in arms.items():
        for kind in expected.kinds():
            if kind not in regen.fact_ids:
                continue
            for metric in metrics:
                name = f"{kind}_{metric}"
                if name not in regen.samples or name not in expected.samples:
                    continue
                ids, r, e = paired_samples(regen, expected, name, kind)
                if len(ids) < 2:
                    continue
                m = split_means(r, e, ids, splits)
                if metric == claims_metric:
                    means.setdefault(arm, {})[kind] = m
                statistics += curve_statistics(m, splits, {"arm": arm, "kind": kind, "metric": metric},
                                               band_groups, shape_groups)
    if carryover is not None:
        statistics += carryover_statistics(*carryover, splits)
    if claims and means:
        per_sample = condition_values(_claim_sets(means, "samples"))
        point = [{k: float(x[0]) for k, x in condition_values(_claim_sets(means, side)).items()} for side in "ab"]
        statistics += claim_statistics(per_sample, point[0], point[1], splits)
    note = "" if len(splits) < MAX_SPLITS else " (a seeded subset of the splits)"
    return judge(statistics, alpha, note)


def _side(m: SplitMeans, side: str) -> np.ndarray:
    """[split or sample, fact, group, layer]: run A's or B's means under every split ("a", "b"), or every pooled
    sample set on its own ("samples")."""
    return np.moveaxis(m.pooled, 1, 0) if side == "samples" else getattr(m, side)


def _claim_sets(means: Mapping[str, Mapping[str, SplitMeans]], side: str
                ) -> dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """{arm or "both_<arm>": {kind: ([split or sample, fact, group, layer], [fact] subsequent-is-last)}} of one side
    (`_side`), for `family.condition_values`: "own" = each arm's paired facts; "both" = the facts of both arms."""
    out: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    for arm, kinds in means.items():
        for kind, m in kinds.items():
            out.setdefault(arm, {})[kind] = (_side(m, side), m.subsequent_is_last)
    if "t2t" in means and "s2t" in means:
        for kind in means["t2t"]:
            if kind not in means["s2t"]:
                continue
            t, s = means["t2t"][kind], means["s2t"][kind]
            common = [i for i in t.ids if i in set(s.ids)]
            for arm, m in (("both_t2t", t), ("both_s2t", s)):
                rows = [m.ids.index(i) for i in common]
                out.setdefault(arm, {})[kind] = (_side(m, side)[:, rows], m.subsequent_is_last[rows])
    return out


def stacked_carryover(results: Path, profile: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray],
                                                             dict[str, Any]] | None:
    """(run's, profile's stacked carry-over arrays, plan) when both kept per-sample patching values for the same
    facts; else None."""
    path = Path(profile) / EXPECTED_DIR / STACKED_FILE
    document = carryover_results(results)
    if document is None or not path.is_file():
        return None
    ids, regen = stacked_arrays(results)
    with np.load(path, allow_pickle=False) as data:
        expected = {k: data[k] for k in data.files}
    if [str(i) for i in expected.get("known_id", [])] != ids or "patch_prob_per_sample" not in expected \
            or "patch_prob_per_sample" not in regen:
        return None
    return regen, expected, document["settings"]["plan"]
