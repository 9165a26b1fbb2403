"""The T->T arm: facts -> noise calibration -> known filter -> text prompts -> the generic runner."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

from artifact.experiments.runner import RunSummary, load_known_ids, open_run_dir, parse_jobs, run_items, save_known
from artifact.core.settings import RunSettings
from artifact.experiments.sharding import Shard

log = logging.getLogger(__name__)


def resolve_noise(spec: str | float, loaded, subjects: Sequence[str]) -> float:
    """The noise scale: a number as given, or '3sigma' = 3 x std of the subject-token embeddings pooled over
    `subjects` (every record of the fact file, as ROME does)."""
    from artifact.tracing import calibrate_noise

    if isinstance(spec, (int, float)):
        return float(spec)
    if str(spec).strip().lower() == "3sigma":
        return calibrate_noise(loaded.model, loaded.tokenizer, subjects)
    try:
        value = float(spec)
    except ValueError:
        raise ValueError(f"--noise must be a number or '3sigma'; got {spec!r}") from None
    if not value >= 0:
        raise ValueError(f"--noise must be a non-negative number or '3sigma'; got {spec!r}")
    return value


def text_items(loaded, facts: Sequence[Any]) -> tuple[list[tuple[Any, Any]], list[tuple[Any, str]]]:
    """(fact, TracePrompt) pairs of the T->T arm; facts whose subject cannot be located are returned apart with the
    reason."""
    from artifact.prompts.build import text_prompt
    from artifact.prompts import SubjectLocationError

    items, skipped = [], []
    for fact in facts:
        try:
            prompt = text_prompt(loaded.tokenizer, fact.prompt, fact.subject, fact.attribute, loaded.is_spiritlm)
        except (SubjectLocationError, ValueError) as exc:
            skipped.append((fact.known_id, str(exc)))
            continue
        items.append((fact, prompt))
    return items, skipped


def run_t2t(
    model: str | Any = "embedded",
    facts: str | Path = "own",
    out: Path = Path("results"),
    limit: int | None = None,
    kinds: Sequence[str] | str = ("hidden", "mlp", "attn"),
    samples: int = 10,
    window: int = 10,
    noise: str | float = "3sigma",
    seed: int = 1,
    batch_size: int = 128,
    positions: str = "all",
    progress: bool = True,
    shard: Shard | None = None,
    device: str | None = None,
    ids: Sequence[Any] | None = None,
    known_only: bool = False,
) -> RunSummary:
    """The T->T experiment: trace the first `limit` known facts of a fact file for every kind (and 'severed').

    `model` is a spec for `load_model` (on `device`, default: CUDA if present) or an already loaded model. Noise is
    calibrated on every record of the fact file. Results go to `<out>/t2t-<model>-<key>/` (see runner.py); a rerun
    resumes. With `shard`, only that shard of the traceable facts is traced (see sharding.py); every shard computes
    the same fact list first, so `--limit` means the same facts with and without sharding. `ids` keeps only these
    known ids (e.g. the facts known in both arms); `known_only` stops once the Known-t2t filter is stored.
    """
    from artifact.facts import facts_fingerprint, load_facts
    from artifact.known import KNOWN_RULE, check_known
    from artifact.models import load_model

    jobs = parse_jobs(kinds)
    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be >= 1; got {limit}")
    records = load_facts(str(facts) if isinstance(facts, Path) else facts)
    loaded = load_model(model, device=device) if isinstance(model, str) else model
    noise_value = resolve_noise(noise, loaded, [fact.subject for fact in records])
    settings = RunSettings(
        arm="t2t", model=loaded.name, dtype=str(loaded.dtype), device=loaded.device.type,
        facts_fingerprint=facts_fingerprint(records), noise_spec=str(noise), noise=noise_value, samples=samples,
        window=window, seed=seed, batch_size=batch_size, positions=positions,
    )
    run_dir = open_run_dir(Path(out), settings)
    log.info("results folder %s (noise %s = %.6g)", run_dir, noise, noise_value)
    known_ids = load_known_ids(run_dir)
    if known_ids is None:
        checks = check_known(loaded, records, modality="text", progress=progress)
        save_known(run_dir, KNOWN_RULE, "text", checks)
        known_ids = [c.known_id for c in checks if c.known]
    known = set(map(str, known_ids))
    log.info("%s knows %d of %d facts (T->T)", loaded.name, len(known), len(records))
    if known_only:
        return RunSummary(run_dir)
    if ids is not None:
        known &= set(map(str, ids))
    selected = [fact for fact in records if str(fact.known_id) in known]
    items, skipped = text_items(loaded, selected)
    for known_id, reason in skipped:
        log.warning("fact %s skipped: %s", known_id, reason)
    if limit is not None:
        items = items[:limit]
        if len(items) < limit:
            log.warning("--limit %d asked, but only %d known facts are traceable", limit, len(items))
    if not items:
        raise ValueError(f"No known, traceable facts to trace ({len(records)} facts, {len(known)} known).")
    return run_items(loaded, items, settings, run_dir, jobs, progress=progress, shard=shard)
