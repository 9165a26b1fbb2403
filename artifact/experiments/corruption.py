"""The corruption-choice step (issue 30): each arm's facts traced again under other corruptions, so that C1-C3 can be
judged under each (`artifact.analysis.corruption_document`):

- Gaussian noise at each of the plan's multiples of the calibrated sigma (`noise_scaled`; sigma = the arm's own noise
  / 3, since the arm's noise is ROME's 3 sigma). Multiple 3 is the arm's own traces, reused, not recomputed.
- symmetric token replacement (`trace_replacement`): the subject's tokens (text) or unit span (speech) replaced by
  another fact's of the same length and another answer, partners found among the arm's prompts
  (`pairing.pair_facts`); a fact without a partner is skipped and counted (pairing.json).

Each (arm, fact) gets one file holding every corruption and kind (`<corruption>__<kind>__<array>`), written
atomically, so a killed run resumes fact by fact; the settings are stored beside them and a rerun with others is
refused. Positions, samples, window, seed and batch size are the arm's own (`runner.trace_config`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from artifact.core.fileio import npz_problem, write_json_atomic, write_npz_atomic
from artifact.core.layout import CORRUPTION_DIR, PAIRING_FILE, corruption_fact_path
from artifact.core.names import ARMS
from artifact.experiments.stepfiles import open_step_dir
from artifact.tracing.pairing import Candidate, pair_facts

log = logging.getLogger(__name__)

SEPARATOR = "__"  # npz keys: <corruption>__<kind>__<array>
REPLACEMENT = "replacement"


def key(corruption: str, kind: str, name: str) -> str:
    """The npz key of one array of one corruption and kind."""
    return SEPARATOR.join((corruption, kind, name))


def noise_label(multiple: float) -> str:
    """'noise_1', 'noise_3', 'noise_5' (as `analysis.corruption.noise_name`, without importing the engine)."""
    return f"noise_{multiple:g}"


def corruption_settings(prepared: dict[str, Any], plan: Any, kinds: Sequence[str]) -> dict[str, Any]:
    """What the step's numbers depend on (stored as corruption/settings.json), from the prepared arms {arm: ...}."""
    settings = {arm: prepared[arm].settings for arm in ARMS}
    return {"models": {arm: prepared[arm].loaded.name for arm in ARMS},
            "noise": {arm: float(s.noise) for arm, s in settings.items()},
            "sigma": {arm: float(s.noise) / 3.0 for arm, s in settings.items()},
            "multiples": [float(m) for m in plan.multiples], "replacement": bool(plan.replacement),
            "kinds": list(kinds), "positions": {arm: s.positions for arm, s in settings.items()},
            **settings["t2t"].trace.to_dict()}  # samples, window, seed, batch size (noise streams unless ROME's)


def partners(items: Sequence[tuple[Any, Any]], wanted: Sequence[str]) -> dict[str, Any]:
    """Token replacement's partners of the `wanted` facts among every prompt of one arm (`items` (fact, prompt)):
    {"partners": {known_id: partner known_id}, "skipped": [known_id...], "same_relation": n}, over `wanted` only."""
    candidates = [Candidate(str(f.known_id), tuple(int(i) for i in p.input_ids[p.subject_range[0]:p.subject_range[1]]),
                            int(p.target_id), str(getattr(f, "relation_id", "") or "")) for f, p in items]
    pairing = pair_facts(candidates)
    relation = {c.key: c.relation for c in candidates}
    chosen = {i: pairing.partners[i] for i in map(str, wanted) if i in pairing.partners}
    return {"partners": chosen, "skipped": [i for i in map(str, wanted) if i not in chosen],
            "same_relation": sum(bool(relation[i]) and relation[i] == relation[p] for i, p in chosen.items())}


def fact_corruptions(loaded: Any, prompt: Any, run_settings: Any, settings: dict[str, Any],
                     partner: Any | None) -> dict[str, np.ndarray]:
    """One arm's fact under every corruption of `settings` but noise at 3 sigma (the arm's own traces), each kind:
    TraceResult arrays per corruption and kind; replacement (with `partner`'s prompt) adds the logit difference."""
    import torch  # lazy: torch

    from artifact.experiments.runner import trace_config  # lazy: torch
    from artifact.tracing.config import noise_scaled  # lazy: torch (artifact.tracing loads the engine)
    from artifact.tracing.engine import trace_fact  # lazy: torch
    from artifact.tracing.replacement import trace_replacement  # lazy: torch

    ids = torch.tensor(prompt.input_ids, dtype=torch.long)
    subject = tuple(prompt.subject_range)
    sigma = settings["sigma"][run_settings.arm]
    out: dict[str, np.ndarray] = {}
    for kind in settings["kinds"]:
        config = trace_config(run_settings, kind, prompt)
        for multiple in settings["multiples"]:
            if multiple == 3.0:
                continue
            result = trace_fact(loaded.model, ids, subject, prompt.target_id, noise_scaled(config, sigma, multiple),
                                loaded.adapter)
            out.update({key(noise_label(multiple), kind, k): v for k, v in result.to_arrays().items()})
        if settings["replacement"] and partner is not None:
            b, e = partner.subject_range
            result = trace_replacement(loaded.model, ids, subject, prompt.target_id, partner.input_ids[b:e],
                                       partner.target_id, config, loaded.adapter)
            out.update({key(REPLACEMENT, kind, k): v for k, v in result.to_arrays().items()})
    return out


def _identity(fact: Any, prompt: Any, partner_id: str) -> dict[str, np.ndarray]:
    return {"known_id": np.asarray(str(fact.known_id)), "subject": np.asarray(fact.subject),
            "input_ids": np.asarray(prompt.input_ids, dtype=np.int64),
            "subject_range": np.asarray(prompt.subject_range, dtype=np.int64),
            "last_position": np.int64(prompt.last_position), "target_id": np.int64(prompt.target_id),
            "partner": np.asarray(partner_id)}


def run_corruption(prepared: dict[str, Any], facts: Sequence[str], settings: dict[str, Any], out: Path,
                   progress: bool = True) -> tuple[list[str], list[str], dict[str, Any]]:
    """Trace each of `facts` (known_ids, known in both arms) in each prepared arm under the corruptions of
    `settings`, skipping (arm, fact) files already present; returns (computed, reused) as 'arm/known_id' and the
    pairing (also written to corruption/pairing.json)."""
    from tqdm import tqdm  # lazy: tqdm

    folder = open_step_dir(Path(out) / CORRUPTION_DIR, settings, "corruption-choice")
    pairing = {arm: partners(prepared[arm].items, facts) for arm in ARMS} if settings["replacement"] else {}
    write_json_atomic(folder / PAIRING_FILE, pairing)
    computed, reused, todo = [], [], []
    for arm in ARMS:
        prompts = {str(f.known_id): (f, p) for f, p in prepared[arm].items}
        for known_id in map(str, facts):
            path = corruption_fact_path(out, arm, known_id)
            problem = npz_problem(path) if path.is_file() else "missing"
            if problem not in (None, "missing"):
                log.warning("%s is damaged (%s): computing it again", path, problem)
            if problem is None:
                reused.append(f"{arm}/{known_id}")
            else:
                todo.append((arm, prompts[known_id]))
    for arm, (fact, prompt) in tqdm(todo, desc="corruption choice", unit="fact", disable=not progress):
        partner_id = (pairing.get(arm) or {}).get("partners", {}).get(str(fact.known_id))
        partner = None
        if partner_id is not None:
            partner = next(p for f, p in prepared[arm].items if str(f.known_id) == partner_id)
        arrays = fact_corruptions(prepared[arm].loaded, prompt, prepared[arm].settings, settings, partner)
        arrays.update(_identity(fact, prompt, partner_id or ""))
        write_npz_atomic(corruption_fact_path(out, arm, fact.known_id), arrays)
        computed.append(f"{arm}/{fact.known_id}")
    return computed, reused, pairing


__all__ = ["REPLACEMENT", "SEPARATOR", "corruption_settings", "fact_corruptions", "key", "noise_label", "partners",
           "run_corruption"]
