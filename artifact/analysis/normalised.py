"""Length-normalised view of traces: each fact's subject span and its remainder resampled to fixed numbers of bins.

Token groups average a long spoken subject (tens of speech tokens) into three cells; this view keeps the shape along
the prompt instead, so facts of different lengths (and the two modalities) can be averaged position by position.

Per fact and layer, the indirect effects IE [pos, layer] are cut into
- the subject span [b, e), resampled to `subject_bins` bins (default 4), and
- the remainder e .. last_position (the tokens after the subject up to where the answer is read: the final prompt
  token in T->T, the [Text] marker in S->T), resampled to `rest_bins` bins (default 8).
Tokens before the subject are left out: restoring them cannot change the output (the noise is on the subject only).

Resampling is overlap-weighted averaging: token i of a span of n tokens covers [i/n, (i+1)/n) of the span, bin k of
m bins covers [k/m, (k+1)/m), and the bin's value is the mean of the tokens weighted by their overlap with it. This
conserves the span's mean, averages when a span has more tokens than bins and repeats a token's value over the bins
it covers when it has fewer (no interpolation between tokens that were never traced together). A fact whose subject
reaches the answer position has no remainder: its remainder bins are NaN and it is left out of their averages.

Only meaningful when every position was traced (run setting positions == "all"); with representative positions the
untraced cells are NaN and the view is refused with a message.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from artifact.analysis.bootstrap import BOOTSTRAP_SEED, CONFIDENCE, N_RESAMPLES, bootstrap_mean_ci
from artifact.analysis.effects import load_job, per_fact_ie
from artifact.core.settings import RunSettings

log = logging.getLogger(__name__)

SUBJECT_BINS = 4
REST_BINS = 8


def bin_weights(length: int, bins: int) -> np.ndarray:
    """[bins, length] overlap weights (rows sum to 1) mapping `length` tokens onto `bins` equal bins of the span."""
    if length < 1 or bins < 1:
        raise ValueError(f"need at least one token and one bin; got length {length}, bins {bins}")
    edges_t = np.arange(length + 1) / length
    edges_b = np.arange(bins + 1) / bins
    lo = np.maximum(edges_b[:-1, None], edges_t[None, :-1])
    hi = np.minimum(edges_b[1:, None], edges_t[None, 1:])
    w = np.clip(hi - lo, 0.0, None)
    return w / w.sum(axis=1, keepdims=True)


def normalise_fact(ie: np.ndarray, subject_range: Sequence[int], last_position: int,
                   subject_bins: int = SUBJECT_BINS, rest_bins: int = REST_BINS) -> np.ndarray:
    """[subject_bins + rest_bins, layer] one fact's length-normalised effects from IE [pos, layer]."""
    b, e = int(subject_range[0]), int(subject_range[1])
    last = int(last_position)
    out = np.full((subject_bins + rest_bins, ie.shape[1]), np.nan)
    out[:subject_bins] = bin_weights(e - b, subject_bins) @ ie[b:e]
    if e <= last:
        out[subject_bins:] = bin_weights(last - e + 1, rest_bins) @ ie[e:last + 1]
    return out


def positions_problem(settings: RunSettings) -> str | None:
    """Why the view cannot be computed for a run (None when it can)."""
    if settings.positions != "all":
        return (f"the {settings.arm} run traced positions {settings.positions!r}, not 'all': untraced cells would "
                "leave holes in the bins. Rerun with --positions all for the length-normalised view.")
    return None


def normalised_effects(run_dir: Path, kind: str, metric: str = "prob", known_ids: Iterable[Any] | None = None,
                       subject_bins: int = SUBJECT_BINS, rest_bins: int = REST_BINS) -> tuple[list[str], np.ndarray]:
    """(known_id strings, [fact, bins, layer]) for every finished `kind` trace of a run that traced all positions."""
    results = load_job(run_dir, kind, known_ids)
    ids, arrays = [], []
    for r in results:
        ie = per_fact_ie(r, metric)
        span = slice(int(r["subject_range"][0]), int(r["last_position"]) + 1)
        if np.isnan(ie[span]).any():
            raise ValueError(f"{run_dir}: fact {r['known_id'].item()} ({kind}) has untraced positions; the "
                             "length-normalised view needs every position traced")
        ids.append(str(r["known_id"].item()))
        arrays.append(normalise_fact(ie, r["subject_range"], int(r["last_position"]), subject_bins, rest_bins))
    L = results[0]["scores"].shape[1] if results else 0
    return ids, np.stack(arrays) if arrays else np.empty((0, subject_bins + rest_bins, L))


def mean_with_ci(effects: np.ndarray, confidence: float = CONFIDENCE, n_resamples: int = N_RESAMPLES,
                 seed: int = BOOTSTRAP_SEED) -> dict[str, Any]:
    """Mean over facts of [fact, bins, layer] with BCa CIs per cell, as nested lists [bins][layer]."""
    n_f, B, L = effects.shape
    n, mean, low, high, _ = bootstrap_mean_ci(effects.reshape(n_f, B * L), confidence, n_resamples, seed)
    as_list = lambda a: [[None if not np.isfinite(x) else float(x) for x in row]  # noqa: E731
                         for row in np.asarray(a).reshape(B, L)]
    return {"n_facts": int(n_f), "n_per_bin": [int(x) for x in n.reshape(B, L).max(axis=1)], "aie": as_list(mean),
            "ci_low": as_list(low), "ci_high": as_list(high)}


def compare_normalised(t2t_dir: Path, s2t_dir: Path, t_set: RunSettings, s_set: RunSettings, kinds: Sequence[str],
                       metric: str, fact_sets: Mapping[str, Mapping[str, Mapping[str, Any]]],
                       bins: tuple[int, int] = (SUBJECT_BINS, REST_BINS), confidence: float = CONFIDENCE,
                       n_resamples: int = N_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> dict[str, Any]:
    """The view for both arms on the given fact sets ({set: {kind: {"t2t": ids, "s2t": ids}}}), or
    {"skipped": reason} when a run did not trace all positions."""
    problems = [p for p in (positions_problem(t_set), positions_problem(s_set)) if p]
    if problems:
        message = " ".join(problems)
        log.info("length-normalised view skipped: %s", message)
        return {"skipped": message}
    subject_bins, rest_bins = bins
    out: dict[str, Any] = {"subject_bins": subject_bins, "rest_bins": rest_bins,
                           "method": "overlap-weighted averaging of the subject span and of the tokens after it up "
                                     "to the answer position; tokens before the subject excluded", "sets": {}}
    for kind in kinds:
        loaded = {arm: normalised_effects(d, kind, metric, None, subject_bins, rest_bins)
                  for arm, d in (("t2t", t2t_dir), ("s2t", s2t_dir))}
        for name, per_kind in fact_sets.items():
            if kind not in per_kind:
                continue
            entry = {}
            for arm in ("t2t", "s2t"):
                ids, arrays = loaded[arm]
                index = {i: k for k, i in enumerate(ids)}
                wanted = [index[i] for i in per_kind[kind][arm] if i in index]
                if wanted:
                    entry[arm] = mean_with_ci(arrays[wanted], confidence, n_resamples, seed)
            if len(entry) == 2:
                out["sets"].setdefault(name, {})[kind] = entry
    return out


__all__ = ["REST_BINS", "SUBJECT_BINS", "bin_weights", "compare_normalised", "mean_with_ci", "normalise_fact",
           "normalised_effects", "positions_problem"]
