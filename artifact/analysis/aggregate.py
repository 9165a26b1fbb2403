"""Statistics of a run: average indirect effects (AIE) per kind, token group and layer, with bootstrap CIs over facts.

Per fact, the indirect effect of a cell is IE = score - low_score (metric "prob") or logprob - low_logprob (metric
"logprob", logit-linear). A fact's effect for a token group is the NaN-mean of its IE over the group's positions
(`groups.token_groups`), so untraced positions (NaN cells) are skipped. AIE = mean over facts; facts whose group is
empty (e.g. the middle of a one-token subject) are left out of that group, and `n_facts` says how many remain.

Unlike ROME's notebook, which pools middle/further tokens of all facts into one average, each fact counts once in
every group: the bootstrap resamples facts, so the statistic must be a mean of per-fact values.

Confidence intervals: `scipy.stats.bootstrap` over facts, 95%, BCa (bias-corrected and accelerated), fixed seed.
BCa because per-fact effects are skewed (most facts near 0, a few large) and bounded; BCa corrects the percentile
interval for bias and skewness (second-order accurate) at the cost of one jackknife, which is cheap for a mean.
Where BCa is undefined (all facts equal: the interval is that value; fewer than two facts: NaN) the row says so in
`ci_method`.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from artifact.analysis.bootstrap import BOOTSTRAP_SEED, CI_METHOD, CONFIDENCE, N_RESAMPLES, bootstrap_mean_ci
from artifact.analysis.effects import FactEffects, fact_effects, load_job
from artifact.core.digests import trace_digests, write_digest_list
from artifact.core.fileio import write_atomic, write_json_atomic, write_npz_atomic
from artifact.core.jsonable import finite_or_none
from artifact.core.layout import AGGREGATE_DIR, TRACE_LIST_FILE, plan_files, result_path
from artifact.core.names import GROUPS, KINDS, METRICS, SEVERABLE
from artifact.core.settings import load_settings

log = logging.getLogger(__name__)


CSV_COLUMNS = ("arm", "kind", "metric", "effect", "group", "layer", "n_facts", "aie", "ci_low", "ci_high",
               "ci_method")


SEVERED_COLUMNS = ("arm", "kind", "metric", "condition", "group", "layer", "n_facts", "aie", "ci_low", "ci_high",
                   "ci_method")


def _estimate(n: np.ndarray, mean: np.ndarray, low: np.ndarray, high: np.ndarray, methods: list[str],
              c: int) -> dict[str, Any]:
    """Column `c` of `bootstrap_mean_ci`'s output as the statistic fields of a row."""
    return {"n_facts": int(n[c]), "aie": finite_or_none(mean[c]), "ci_low": finite_or_none(low[c]),
            "ci_high": finite_or_none(high[c]), "ci_method": methods[c]}


def effect_rows(arm: str, fe: FactEffects, **bootstrap) -> list[dict[str, Any]]:
    """Tidy rows of one kind and metric: AIE per (group, layer) and the ATE."""
    rows = []
    G, L = len(GROUPS), fe.effects.shape[2] if fe.effects.ndim == 3 else 0
    if len(fe.known_ids):
        ci = bootstrap_mean_ci(fe.effects.reshape(len(fe.known_ids), G * L), **bootstrap)
        for g, group in enumerate(GROUPS):
            for layer in range(L):
                rows.append({"arm": arm, "kind": fe.kind, "metric": fe.metric, "effect": "AIE", "group": group,
                             "layer": layer, **_estimate(*ci, g * L + layer)})
        rows.append({"arm": arm, "kind": fe.kind, "metric": fe.metric, "effect": "ATE", "group": "", "layer": "",
                     **_estimate(*bootstrap_mean_ci(fe.ate, **bootstrap), 0)})
    return rows


def severed_rows(arm: str, run_dir: Path, metric: str, known_ids=None, **bootstrap) -> tuple[list[dict], dict]:
    """AIE by layer of restoring the hidden state at the last subject token: plain, MLP severed, attention severed."""
    results = load_job(run_dir, "severed", known_ids)
    rows, arrays = [], {}
    if not results:
        return rows, arrays
    prefix, low_key = ("scores", "low_score") if metric == "prob" else ("logprobs", "low_logprob")
    for condition in ("plain", *SEVERABLE):
        data = np.stack([r[f"{prefix}_{condition}"] - r[low_key] for r in results])  # [fact, layer]
        arrays[f"severed_{condition}_{metric}"] = data
        ci = bootstrap_mean_ci(data, **bootstrap)
        for layer in range(data.shape[1]):
            rows.append({"arm": arm, "kind": "hidden", "metric": metric, "condition": condition,
                         "group": "last_subject", "layer": layer, **_estimate(*ci, layer)})
    arrays["severed_known_ids"] = np.asarray([r["known_id"].item() for r in results])
    return rows, arrays


def peaks(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per kind and metric: the (group, layer) with the largest AIE, and the peak layer within each group."""
    out: dict[str, Any] = {}
    for row in rows:
        if row["effect"] != "AIE" or row["aie"] is None:
            continue
        entry = out.setdefault(f"{row['kind']}/{row['metric']}", {"overall": None, "by_group": {}})
        if entry["overall"] is None or row["aie"] > entry["overall"]["aie"]:
            entry["overall"] = {k: row[k] for k in ("group", "layer", "aie", "ci_low", "ci_high", "n_facts")}
        best = entry["by_group"].get(row["group"])
        if best is None or row["aie"] > best["aie"]:
            entry["by_group"][row["group"]] = {k: row[k] for k in ("layer", "aie", "ci_low", "ci_high")}
    return out


def _write_csv(path: Path, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row[k] is None else repr(row[k]) if isinstance(row[k], float) else row[k])
                         for k in columns})
    write_atomic(path, lambda handle: handle.write(buffer.getvalue().encode()))


def aggregate_run(
    run_dir: Path,
    out_dir: Path | None = None,
    kinds: Sequence[str] = KINDS,
    known_ids: Iterable[Any] | None = None,
    confidence: float = CONFIDENCE,
    n_resamples: int = N_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> dict[str, Any]:
    """Aggregate a run folder into `out_dir` (default `<run_dir>/aggregate`): aie.csv (tidy), aie.json (rows, peaks,
    settings, bootstrap method), severed.csv when the severed job ran, and group_effects.npz (per-fact arrays
    [fact, group, layer] per kind and metric, for paired comparisons). Returns the JSON document."""
    run_dir = Path(run_dir)
    settings = load_settings(run_dir)
    out_dir = Path(out_dir) if out_dir is not None else run_dir / AGGREGATE_DIR
    known_ids = list(known_ids) if known_ids is not None else None
    boot = {"confidence": confidence, "n_resamples": n_resamples, "seed": seed}
    rows, sev_rows, arrays, n_facts = [], [], {}, {}
    for kind in kinds:
        for metric in METRICS:
            fe = fact_effects(run_dir, kind, metric, known_ids)
            n_facts[kind] = len(fe.known_ids)
            rows += effect_rows(settings.arm, fe, **boot)
            arrays[f"{kind}_{metric}"] = fe.effects
            if fe.samples is not None:  # [fact, sample, group, layer]: the noise's share of the uncertainty
                arrays[f"{kind}_{metric}_per_sample"] = fe.samples
            arrays[f"{kind}_known_ids"] = np.asarray(fe.known_ids)
    for metric in METRICS:
        extra_rows, extra_arrays = severed_rows(settings.arm, run_dir, metric, known_ids, **boot)
        sev_rows += extra_rows
        arrays.update(extra_arrays)
    if not any(n_facts.values()):
        raise FileNotFoundError(f"No finished traces in {run_dir / 'traces'}: run `python -m artifact run` first.")
    missing = _missing(run_dir, n_facts, known_ids)
    if missing:
        log.warning("results incomplete: %s", ", ".join(f"{k}: {len(v)} missing" for k, v in missing.items()))
    if len({tuple(arrays[f"{k}_known_ids"].tolist()) for k in kinds if n_facts[k]}) > 1:
        log.warning("kinds were traced on different facts (%s); curves per kind average different fact sets",
                    ", ".join(f"{k}: {n}" for k, n in n_facts.items()))
    document = {
        "run": run_dir.name,
        "settings": settings.to_dict(),
        "groups": list(GROUPS),
        "group_rule": "groups.token_groups: first/middle/last subject token, first subsequent, further, last; "
                      "per-fact NaN-mean over a group's positions; empty groups leave the fact out",
        "bootstrap": {"unit": "fact", "method": CI_METHOD, "fallback": "percentile", **boot},
        "n_facts": n_facts,
        "missing": missing,
        "peaks": peaks(rows),
        "rows": rows,
        "severed_rows": sev_rows,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_csv(out_dir / "aie.csv", rows, CSV_COLUMNS)
    if sev_rows:
        _write_csv(out_dir / "severed.csv", sev_rows, SEVERED_COLUMNS)
    write_json_atomic(out_dir / "aie.json", document)
    write_npz_atomic(out_dir / "group_effects.npz", {**arrays, "groups": np.asarray(GROUPS)})
    write_digest_list(out_dir / TRACE_LIST_FILE, trace_digests(run_dir))  # what verify.py recomputes from
    return document


def _missing(run_dir: Path, n_facts: dict[str, int], known_ids) -> dict[str, list[Any]]:
    """Planned (fact, job) results not yet present, per job, from every plan file (plan.json of unsharded runs,
    plans/shard-I-of-N.json of shards, whose whole-run fact list also covers shards that never started)."""
    planned: dict[str, dict[str, Any]] = {}  # job -> {str(id): id}, in plan order
    universes: dict[int, set[str]] = {}  # shard count -> fingerprints of the whole-run fact lists of its shards
    for path in plan_files(run_dir):
        plan = json.loads(path.read_text())
        ids = plan.get("all_known_ids", plan["known_ids"])
        if "shard" in plan:
            universes.setdefault(int(str(plan["shard"]).split("/")[1]), set()).add(plan.get("all_ids_sha256"))
        for job in plan["jobs"]:
            for i in ids:
                planned.setdefault(job, {}).setdefault(str(i), i)
    for count, prints in universes.items():
        if len(prints) > 1:
            log.warning("the %d shards of this run planned different fact lists (different --limit or facts?); "
                        "results may not cover one run", count)
    wanted = None if known_ids is None else {str(i) for i in known_ids}
    missing = {}
    for job, ids in planned.items():
        absent = [i for key, i in ids.items()
                  if (wanted is None or key in wanted) and not result_path(run_dir, job, i).is_file()]
        if absent:
            missing[job] = absent
    return missing


def load_aggregate(run_dir: Path) -> dict[str, Any]:
    """The stored aie.json of a run folder (error naming the command to run when absent)."""
    path = Path(run_dir) / AGGREGATE_DIR / "aie.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run `python -m artifact aggregate --results {run_dir}` first.")
    return json.loads(path.read_text())
