"""The experiment runner: one result file per (fact, job), written atomically, skipped when present (resume).

Generic over prompts: it takes (fact, TracePrompt) pairs and an arm name, so the two arms of `arms.py` (T->T: text
prompts; S->T: prompts from the speech front end) share it unchanged. Layout of a run folder
(`<root>/<arm>-<model>-<key>/`):

    settings.json            RunSettings (the folder name hashes all of it but the resolved noise value)
    plan.json                the facts and jobs of the latest invocation (aggregation reports what is missing)
    plans/shard-I-of-N.json  the same per shard of a sharded run (`sharding.py`), plus the whole run's fact ids
    known.json               the known-fact filter: rule, and per fact whether the model knows it (written by the arm)
    traces/<job>/<id>.npz    one result per fact and job (job: hidden, mlp, attn, severed)

Locks (`run_lock`): an unsharded run holds `.lock` exclusively; shard I/N holds `.lock` shared and
`.lock-shard-I-of-N` exclusively, so the shards of one run share a folder (also on a shared filesystem) while a
second copy of the same shard, an unsharded run, or a run split into another number of shards is refused.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import logging
import math
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from artifact.core.fileio import TMP_PREFIX, create_json_once, npz_problem, write_json_atomic, write_npz_atomic
from artifact.core.groups import positions_for
from artifact.core.layout import (
    KNOWN_FILE,
    LOCK_FILE,
    SETTINGS_FILE,
    ResultsFolderError,
    fact_file_id,
    plan_path,
    result_path,
)
from artifact.core.names import JOBS, KINDS
from artifact.core.settings import RunSettings, load_settings
from artifact.experiments.sharding import Shard, ids_fingerprint
from artifact.tracing import TraceConfig, trace_fact
from artifact.tracing.engine import PER_SAMPLE_ARRAYS
from artifact.tracing.severed import severed_cells, severed_trace

log = logging.getLogger(__name__)



# ----------------------------------------------------------------------------------------------------------- files


@contextlib.contextmanager
def run_lock(run_dir: Path, shard: Shard | None = None, own_files: Sequence[Path] = ()) -> Iterator[None]:
    """Lock a run folder for one run or one shard (locks are released by the OS if the process dies) and remove
    stale temporary files: all of them for an unsharded run, only those of `own_files` for a shard (another shard may
    be writing its own temporary files right now)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        folder = stack.enter_context(open(run_dir / LOCK_FILE, "a+"))  # read+write: NFS maps flock to fcntl locks
        held = "another run" if shard is None else "an unsharded run"
        _flock(folder, fcntl.LOCK_EX if shard is None else fcntl.LOCK_SH,
               f"{run_dir} is in use by {held} (its lock is held). Wait for it to finish or use another --out.")
        stack.callback(fcntl.flock, folder, fcntl.LOCK_UN)
        if shard is None:
            for stale in run_dir.rglob(TMP_PREFIX + "*"):  # left by a killed run; safe to remove under the lock
                stale.unlink(missing_ok=True)
            yield
            return
        mine = stack.enter_context(open(run_dir / f"{LOCK_FILE}-{shard.name}", "a+"))
        _flock(mine, fcntl.LOCK_EX, f"shard {shard} is already running in {run_dir}; start each shard once.")
        stack.callback(fcntl.flock, mine, fcntl.LOCK_UN)
        for other in sorted(run_dir.glob(f"{LOCK_FILE}-shard-*-of-*")):
            if other.name.endswith(f"-of-{shard.count}"):
                continue
            with open(other, "a+") as handle:  # held by a live run split another way: its facts overlap ours
                _flock(handle, fcntl.LOCK_SH,
                       f"{run_dir} is in use by a run split into another number of shards ({other.name[6:]}); run "
                       f"all shards with the same N (now {shard.count}) or wait for it to finish.")
                fcntl.flock(handle, fcntl.LOCK_UN)
        for path in own_files:  # left by a killed run of this shard; nobody else writes these files
            for stale in Path(path).parent.glob(TMP_PREFIX + Path(path).name + ".*"):
                stale.unlink(missing_ok=True)
        yield


def _flock(handle, mode: int, busy: str) -> None:
    """Take a non-blocking flock; `busy` is the error when another process holds it. Filesystems without locks
    (e.g. Lustre mounted without -o flock) get an error naming the way out."""
    try:
        fcntl.flock(handle, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        raise ResultsFolderError(busy) from None
    except OSError as exc:
        raise ResultsFolderError(
            f"cannot lock {handle.name} ({exc.strerror}): this filesystem does not support file locks. Mount it with "
            "locking (Lustre: -o flock), or give each shard its own --out on a local disk and join the folders with "
            "`python -m artifact merge`.") from None


# ------------------------------------------------------------------------------------------------- results folder


def open_run_dir(root: Path, settings: RunSettings, noise_rtol: float = 1e-9) -> Path:
    """The run folder of `settings` under `root`, created with its settings.json, or checked against it.

    A stored settings file that differs (a different key, or a resolved noise value that moved because the model's
    weights or the calibration changed) is an error: results computed with other settings are never mixed.
    """
    run_dir = Path(root) / settings.folder_name()
    path = run_dir / SETTINGS_FILE
    if not create_json_once(path, settings.to_dict()):  # exists (perhaps written by another shard just now)
        stored = RunSettings.from_dict(json.loads(path.read_text()))
        if stored.key_dict() != settings.key_dict():
            diff = {k: (v, settings.key_dict()[k]) for k, v in stored.key_dict().items() if settings.key_dict()[k] != v}
            raise ResultsFolderError(f"{run_dir} holds results of other settings (stored vs now: {diff}).")
        if not math.isclose(stored.noise, settings.noise, rel_tol=noise_rtol, abs_tol=0.0):
            raise ResultsFolderError(
                f"{run_dir} was computed with noise {stored.noise!r} but the same settings now give {settings.noise!r}"
                " (did the model's weights change?). Use another --out, or move the old folder away."
            )
    return run_dir


# ----------------------------------------------------------------------------------------------------------- jobs


def trace_config(settings: RunSettings, kind: str, prompt) -> TraceConfig:
    """The TraceConfig of one (fact, kind), positions resolved from the run's position policy."""
    positions = positions_for(settings.positions, len(prompt.input_ids), prompt.subject_range, prompt.last_position)
    return TraceConfig.of(settings.trace, kind=kind if kind in KINDS else "hidden", noise=settings.noise,
                          positions=positions)


def job_cells(job: str, prompt, settings: RunSettings, num_layers: int) -> int:
    """Progress units of one job: traced (token, layer) cells, or patch groups for the severed job."""
    if job == "severed":
        return severed_cells(num_layers)
    positions = trace_config(settings, job, prompt).positions
    return (len(prompt.input_ids) if positions is None else len(positions)) * num_layers


def fact_arrays(fact, prompt, tokenizer, arm: str, job: str) -> dict[str, np.ndarray]:
    """The fact's identity and prompt stored beside its numbers, so a result file explains itself."""
    ids = list(prompt.input_ids)
    return {
        "known_id": np.asarray(fact.known_id),
        "subject": np.asarray(fact.subject),
        "attribute": np.asarray(fact.attribute),
        "prompt": np.asarray(fact.prompt),
        "relation_id": np.asarray(getattr(fact, "relation_id", "") or ""),
        "prompt_text": np.asarray(prompt.text),
        "modality": np.asarray(prompt.modality),
        "last_position": np.int64(prompt.last_position),
        "token_labels": np.asarray([tokenizer.decode([i]) if tokenizer is not None else str(i) for i in ids]),
        "answer": np.asarray(tokenizer.decode([prompt.target_id]) if tokenizer is not None else str(prompt.target_id)),
        "arm": np.asarray(arm),
        "job": np.asarray(job),
    }


def compute_job(job: str, loaded, prompt, settings: RunSettings, progress=None) -> dict[str, np.ndarray]:
    """Run one job on one prompt; the arrays of its result file (without the fact's identity)."""
    input_ids = torch.tensor(prompt.input_ids, dtype=torch.long)
    config = trace_config(settings, job, prompt)
    if job == "severed":
        result = severed_trace(loaded.model, input_ids, tuple(prompt.subject_range), prompt.target_id, config,
                               loaded.adapter, progress=progress)
        arrays = result.to_arrays()
        arrays["input_ids"] = input_ids.numpy()
        arrays["subject_range"] = np.asarray(prompt.subject_range, dtype=np.int64)
        arrays["target_id"] = np.int64(prompt.target_id)
    else:
        result = trace_fact(loaded.model, input_ids, tuple(prompt.subject_range), prompt.target_id, config,
                            loaded.adapter, progress)
        arrays = result.to_arrays()
        arrays["positions"] = np.asarray(
            config.positions if config.positions is not None else range(len(prompt.input_ids)), dtype=np.int64)
    arrays["config"] = np.asarray(json.dumps(config.to_dict(), sort_keys=True))
    return arrays


# --------------------------------------------------------------------------------------------------------- runner


@dataclass
class RunSummary:
    run_dir: Path
    computed: list[tuple[Any, str]] = field(default_factory=list)  # (known_id, job) computed now
    skipped: list[tuple[Any, str]] = field(default_factory=list)  # (known_id, job) found finished
    seconds: float = 0.0
    shard: Shard | None = None  # the shard this process ran (None: the whole run)


def parse_jobs(jobs: Sequence[str] | str) -> tuple[str, ...]:
    """Validate job names ('hidden,mlp,attn' or a list); unknown names are an error naming the valid ones."""
    names = [j.strip() for j in jobs.split(",")] if isinstance(jobs, str) else [str(j).strip() for j in jobs]
    names = [n for n in names if n]
    bad = [n for n in names if n not in JOBS]
    if bad or not names:
        raise ValueError(f"Unknown kind(s) {bad or names!r}; choose from {', '.join(JOBS)} (comma-separated).")
    return tuple(dict.fromkeys(names))


def run_items(
    loaded,
    items: Sequence[tuple[Any, Any]],
    settings: RunSettings,
    run_dir: Path,
    jobs: Sequence[str] = KINDS,
    progress: bool = True,
    shard: Shard | None = None,
) -> RunSummary:
    """Trace every (fact, prompt) in `items` for every job into `run_dir` (from `open_run_dir`), skipping results
    already present. `items` are (fact, TracePrompt) pairs: a fact has known_id, subject, attribute, prompt,
    relation_id; the prompt has input_ids [pos], subject_range, target_id, text, modality, last_position.
    With `shard`, only that shard's items (`Shard.select` by known_id) are traced; pass every shard the same items.
    """
    from tqdm import tqdm  # lazy: tqdm

    jobs = parse_jobs(jobs)
    run_dir = Path(run_dir)
    if load_settings(run_dir).key_dict() != settings.key_dict():
        raise ResultsFolderError(f"{run_dir} was opened with other settings; use open_run_dir(root, settings).")
    ids = [fact.known_id for fact, _ in items]
    if len(set(map(fact_file_id, ids))) != len(ids):
        raise ValueError("Facts' known_id values must be unique (they name the result files).")
    shard = None if shard is None or shard.whole else shard
    all_ids = ids
    if shard is not None:
        items = shard.select(items, key=lambda item: item[0].known_id)
        ids = [fact.known_id for fact, _ in items]
        log.info("shard %s: %d of %d facts", shard, len(ids), len(all_ids))
    summary = RunSummary(run_dir, shard=shard)
    start = time.perf_counter()
    num_layers = loaded.adapter.num_layers
    own = [result_path(run_dir, job, i) for job in jobs for i in ids]
    with run_lock(run_dir, shard, own + ([] if shard is None else [plan_path(run_dir, shard.name)])):
        plan = {"arm": settings.arm, "jobs": list(jobs), "known_ids": [_jsonable(i) for i in ids]}
        if shard is not None:
            plan.update(shard=str(shard), all_known_ids=[_jsonable(i) for i in all_ids],
                        all_ids_sha256=ids_fingerprint(all_ids))
        write_json_atomic(plan_path(run_dir, None if shard is None else shard.name), plan)
        pending, damaged, stale = [], [], []
        for job in jobs:
            for fact, prompt in items:
                path = result_path(run_dir, job, fact.known_id)
                problem = npz_problem(path) if path.is_file() else "missing"
                outdated = outdated_trace_problem(path) if problem is None and job != "severed" else None
                if problem is None and outdated is None:
                    summary.skipped.append((fact.known_id, job))
                    continue
                pending.append((job, fact, prompt))
                if outdated is not None:
                    stale.append(f"{path.relative_to(run_dir)} ({outdated})")
                elif problem != "missing":
                    damaged.append(f"{path.relative_to(run_dir)} ({problem})")
        for files, what in ((damaged, "damaged"), (stale, "out-of-date")):
            if files:
                log.warning("%d %s result file(s) in %s are computed again: %s", len(files), what, run_dir,
                            "; ".join(files[:3]) + (" ..." if len(files) > 3 else ""))
        if summary.skipped:
            log.info("resuming %s: %d results already present, %d to compute", run_dir, len(summary.skipped),
                     len(pending))
        total = sum(job_cells(job, prompt, settings, num_layers) for job, _, prompt in pending)
        desc = f"{settings.arm} traces" + ("" if shard is None else f" (shard {shard})")
        with tqdm(total=total, unit="cell", desc=desc, disable=not progress,
                  dynamic_ncols=True) as bar:
            for n, (job, fact, prompt) in enumerate(pending, 1):
                bar.set_postfix_str(f"{job} fact {fact.known_id} ({n}/{len(pending)})", refresh=False)
                arrays = compute_job(job, loaded, prompt, settings, bar.update)
                arrays.update(fact_arrays(fact, prompt, loaded.tokenizer, settings.arm, job))
                write_npz_atomic(result_path(run_dir, job, fact.known_id), arrays)
                summary.computed.append((fact.known_id, job))
    summary.seconds = time.perf_counter() - start
    return summary


def outdated_trace_problem(path: Path) -> str | None:
    """Why an intact finished trace file cannot be trusted by this version, or None. Traces written before issue 28
    lack the per-sample arrays every trace of this version holds; trusting them on resume would leave a folder whose
    facts carry per-sample values or not depending on where it was stopped (its aggregate and verify's noise checks
    would then differ from an uninterrupted run's), so such a file is computed again, which gives the same means."""
    with zipfile.ZipFile(path) as archive:
        members = {name.removesuffix(".npy") for name in archive.namelist()}
    missing = [name for name in PER_SAMPLE_ARRAYS if name not in members]
    return f"written by an older version without {', '.join(missing)}" if missing else None


def _jsonable(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def save_known(run_dir: Path, rule: str, modality: str, checks: Sequence[Any]) -> Path:
    """Store the known-fact filter's outcome (rule and per-fact checks) in the run folder, once: when it exists
    (another shard wrote it first), it must agree on which facts are known, or the shards would not split one fact
    list (probabilities may differ in the last bits between GPUs; the first file written stays)."""
    rows = []
    for check in checks:
        if dataclasses.is_dataclass(check):
            row = dataclasses.asdict(check)
        elif hasattr(check, "_asdict"):
            row = dict(check._asdict())
        else:
            row = dict(vars(check))
        rows.append({k: _jsonable(v) for k, v in row.items()})
    path = Path(run_dir) / KNOWN_FILE
    document = {"rule": rule, "modality": modality, "n_facts": len(rows),
                "n_known": sum(bool(r.get("known")) for r in rows), "checks": rows}
    if not create_json_once(path, document):
        def decisions(doc: dict[str, Any]) -> tuple:
            return doc["rule"], doc["modality"], [(str(r["known_id"]), bool(r.get("known"))) for r in doc["checks"]]

        if decisions(json.loads(path.read_text())) != decisions(document):
            raise ResultsFolderError(
                f"{path} (written by another shard or an earlier run) disagrees with this process on which facts "
                "the model knows, so the shards would not split one fact list. Check that every shard runs the same "
                "model, fact file and device type; move known.json away to redo the filter.")
    return path


def load_known_ids(run_dir: Path) -> list[Any] | None:
    """Known facts' ids from a stored known.json, or None when the filter has not been saved yet."""
    path = Path(run_dir) / KNOWN_FILE
    if not path.is_file():
        return None
    return [row["known_id"] for row in json.loads(path.read_text())["checks"] if row.get("known")]
