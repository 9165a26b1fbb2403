"""Per-fact indirect effects from a run folder's trace files: IE = score - low_score (metric "prob") or
logprob - low_logprob ("logprob", logit-linear), and each fact's effect per ROME token group: the NaN-mean of its IE
over the group's positions (`core.groups.token_groups`), so untraced positions are skipped and an empty group is NaN.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from artifact.core.fileio import DamagedFileError, npz_problem
from artifact.core.groups import token_groups
from artifact.core.names import GROUPS, METRICS


def _id_key(known_id: Any) -> tuple:
    try:
        return (0, int(known_id), "")
    except (TypeError, ValueError):
        return (1, 0, str(known_id))


def load_job(run_dir: Path, job: str, known_ids: Iterable[Any] | None = None) -> list[dict[str, np.ndarray]]:
    """Every finished result of `job` in a run folder, sorted by known_id (optionally only `known_ids`)."""
    folder = Path(run_dir) / "traces" / job
    paths = sorted(p for p in folder.glob("*.npz") if not p.name.startswith(".")) if folder.is_dir() else []
    wanted = None if known_ids is None else {str(i) for i in known_ids}
    results = []
    for path in paths:
        problem = npz_problem(path)
        if problem is not None:  # never aggregate a truncated or bit-flipped trace, never fail inside numpy
            raise DamagedFileError(path, problem, "Delete it and rerun the same command: the trace step computes "
                                                  "that fact again (finished facts are kept).")
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
        if wanted is None or str(arrays["known_id"].item()) in wanted:
            results.append(arrays)
    results.sort(key=lambda a: _id_key(a["known_id"].item()))
    return results


def per_fact_ie(arrays: dict[str, np.ndarray], metric: str) -> np.ndarray:
    """[pos, layer] indirect effects of one trace: score - low_score, or logprob - low_logprob."""
    if metric == "prob":
        return arrays["scores"] - arrays["low_score"]
    if metric == "logprob":
        return arrays["logprobs"] - arrays["low_logprob"]
    raise ValueError(f"metric must be one of {', '.join(METRICS)}; got {metric!r}")


def per_sample_ie(arrays: dict[str, np.ndarray], metric: str) -> np.ndarray | None:
    """[sample, pos, layer] indirect effects per noise sample, each against its own corrupted baseline (their mean
    over samples is `per_fact_ie` up to rounding); None for a trace file written before per-sample values were kept."""
    names = {"prob": ("scores_per_sample", "low_score_per_sample"),
             "logprob": ("logprobs_per_sample", "low_logprob_per_sample")}
    if metric not in names:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}; got {metric!r}")
    values, low = names[metric]
    if values not in arrays or low not in arrays:
        return None
    return arrays[values] - arrays[low][:, None, None]


def group_effects(ie: np.ndarray, subject_range: Sequence[int], last_position: int | None = None) -> np.ndarray:
    """[group, layer] one fact's effect per ROME token group: NaN-mean of `ie` [pos, layer] over the group's
    positions; NaN for an empty (or wholly untraced) group."""
    groups = token_groups(ie.shape[0], (int(subject_range[0]), int(subject_range[1])), last_position)
    out = np.full((len(GROUPS), ie.shape[1]), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slice -> NaN, as wanted
        for g, name in enumerate(GROUPS):
            if groups[name]:
                out[g] = np.nanmean(ie[groups[name]], axis=0)
    return out


@dataclass
class FactEffects:
    """Per-fact effects of one kind and metric, ready for statistics (and for paired comparisons across arms)."""

    kind: str
    metric: str
    known_ids: list[Any]
    effects: np.ndarray  # [fact, group, layer]
    ate: np.ndarray  # [fact] high - low (total effect of the corruption)
    high: np.ndarray  # [fact] clean score (or logprob)
    low: np.ndarray  # [fact] corrupted score (or logprob)
    subsequent_is_last: np.ndarray  # [fact] the first subsequent token is the last token (the subject ends just before)
    samples: np.ndarray | None = None  # [fact, sample, group, layer] per noise sample; None when a trace lacks them


def mechanism_view(effects: np.ndarray, subsequent_is_last: np.ndarray) -> np.ndarray:
    """[fact, group, layer] effects with the first subsequent token blanked (NaN) where it is the last token: in a
    statistic of the mechanism (all groups but the last token), the last token must not enter through that group."""
    out = np.array(effects, dtype=np.float64, copy=True)
    out[np.asarray(subsequent_is_last, dtype=bool), GROUPS.index("first_subsequent")] = np.nan
    return out


def fact_effects(run_dir: Path, kind: str, metric: str, known_ids: Iterable[Any] | None = None) -> FactEffects:
    """Per-fact group effects of every finished `kind` trace in a run folder."""
    results = load_job(run_dir, kind, known_ids)
    key_hi, key_lo = ("high_score", "low_score") if metric == "prob" else ("high_logprob", "low_logprob")
    L = results[0]["scores"].shape[1] if results else 0
    effects = np.stack([group_effects(per_fact_ie(r, metric), r["subject_range"], int(r["last_position"]))
                        for r in results]) if results else np.empty((0, len(GROUPS), L))
    high = np.array([float(r[key_hi]) for r in results])
    low = np.array([float(r[key_lo]) for r in results])
    overlap = np.array([int(r["subject_range"][1]) == int(r["last_position"]) for r in results], dtype=bool)
    return FactEffects(kind, metric, [r["known_id"].item() for r in results], effects, high - low, high, low, overlap,
                       samples=_sample_effects(results, metric))


def _sample_effects(results: list[dict[str, np.ndarray]], metric: str) -> np.ndarray | None:
    """[fact, sample, group, layer] group effects per noise sample, when every trace kept its per-sample values
    with one sample count; else None (the run's statistics then see the facts only)."""
    per_fact = [per_sample_ie(r, metric) for r in results]
    if not per_fact or any(ie is None for ie in per_fact) or len({ie.shape[0] for ie in per_fact}) != 1:
        return None
    return np.stack([np.stack([group_effects(ie, r["subject_range"], int(r["last_position"])) for ie in per_ie])
                     for r, per_ie in zip(results, per_fact)])
