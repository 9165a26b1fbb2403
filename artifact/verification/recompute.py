"""Recompute, don't trust: verify.py checks every trace file of both arms against the sha256 list the run wrote
when it aggregated them, then recomputes the aggregates and the comparison (statistics and claim verdicts) from the
traces with the artifact's own code and requires the stored files to equal them. A stale, edited or missing derived
file is a FAIL that names it; nothing is recomputed from traces that fail their digests."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from artifact.analysis.aggregate import aggregate_run
from artifact.analysis.compare import compare_runs
from artifact.core.digests import read_digest_list, trace_digests
from artifact.core.layout import (
    AGGREGATE_DIR,
    COMPARISON_FILE,
    EFFECTS_FILE,
    TRACE_LIST_FILE,
    TRACES_DIR,
    ResultsFolderError,
)
from artifact.core.names import ARMS, KINDS
from artifact.core.results import ResultsFolder
from artifact.core.settings import load_settings
from artifact.verification.records import FAIL, PASS, Check

RTOL = 1e-9  # recomputation on the same machine is bitwise; this only absorbs JSON's float printing
PATH_KEYS = ("t2t_run", "s2t_run")  # absolute paths: a moved results folder is still the same run
SHOWN = 3  # differences named per failed check


def stale_detail(path: Path | str, differences: list[str], source: str, step: str) -> str:
    """The FAIL detail of a derived file that its sources no longer give: which file, where it differs (the first
    SHOWN), and the fix that works on every step's file: delete it and rerun with the same --out, since a rerun
    redoes a step whose file is missing (and the steps after it, reusing their finished fact files)."""
    more = f" (and {len(differences) - SHOWN} more)" if len(differences) > SHOWN else ""
    return (f"{path} is not what its {source} give (stale or edited, or written by other code); first differences: "
            f"{'; '.join(differences[:SHOWN])}{more}; delete it and rerun ./run_all.sh with the same --out: the "
            f"{step} step recomputes it from its {source}")


def digest_problems(listed: dict[str, str], present: dict[str, str]) -> list[str]:
    """What differs between a sha256 list and the files present (name -> sha256): missing, changed and unlisted
    files, each kind named (the first SHOWN) and counted; empty when they match."""
    missing = sorted(set(listed) - set(present))
    unlisted = sorted(set(present) - set(listed))
    changed = sorted(name for name in set(listed) & set(present) if listed[name] != present[name])
    return [f"{label}: {', '.join(names[:SHOWN])}{' ...' if len(names) > SHOWN else ''} ({len(names)})"
            for label, names in (("missing", missing), ("changed since aggregation (sha256 differs)", changed),
                                 ("not aggregated", unlisted)) if names]


def check_trace_files(run_dir: Path, arm: str) -> Check:
    """Every trace file listed in aggregate/traces.sha256 is present with its digest, and no other trace exists."""
    listing = run_dir / AGGREGATE_DIR / TRACE_LIST_FILE
    if not listing.is_file():
        return Check("trace_files", FAIL, arm=arm, detail=f"missing {listing}: the aggregate step writes it (a run "
                                                           "aggregated before it existed: `python -m artifact "
                                                           f"aggregate --results {run_dir}`); without it the traces "
                                                           "behind the aggregate cannot be checked")
    try:
        listed = read_digest_list(listing)
    except ValueError as error:
        return Check("trace_files", FAIL, arm=arm, detail=str(error))
    present = trace_digests(run_dir)
    problems = digest_problems(listed, present)
    if problems:
        return Check("trace_files", FAIL, arm=arm, observed=len(present), expected=len(listed),
                     detail=f"trace files of {run_dir.name} do not match {listing.name}: " + "; ".join(problems))
    return Check("trace_files", PASS, arm=arm, observed=len(present), expected=len(listed),
                 detail=f"{len(listed)} trace files match their sha256 in {listing.name}")


def _npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def _arrays_differ(stored: dict[str, np.ndarray], fresh: dict[str, np.ndarray]) -> list[str]:
    names = [f"{key} (missing)" for key in sorted(set(fresh) - set(stored))]
    names += [f"{key} (extra)" for key in sorted(set(stored) - set(fresh))]
    for key in sorted(set(stored) & set(fresh)):
        a, b = stored[key], fresh[key]
        same = a.shape == b.shape and (np.array_equal(a, b, equal_nan=True) if a.dtype.kind == "f"
                                       else np.array_equal(a, b))
        if not same:
            names.append(key)
    return names


def check_aggregate(run_dir: Path, arm: str, scratch: Path) -> Check:
    """The stored aggregate (aggregate/group_effects.npz) equals one recomputed from the traces."""
    stored_path = run_dir / AGGREGATE_DIR / EFFECTS_FILE
    if not stored_path.is_file():
        return Check("aggregate_fresh", FAIL, arm=arm, detail=f"missing {stored_path}")
    load_settings(run_dir)  # a clear error for a folder without settings.json
    traced = [kind for kind in KINDS if any((run_dir / TRACES_DIR / kind).glob("*.npz"))]
    out = scratch / f"{arm}-aggregate"
    aggregate_run(run_dir, out_dir=out, kinds=traced)
    differ = _arrays_differ(_npz(stored_path), _npz(out / EFFECTS_FILE))
    if differ:
        return Check("aggregate_fresh", FAIL, arm=arm,
                     detail=stale_detail(stored_path, differ, "traces", "aggregate"))
    return Check("aggregate_fresh", PASS, arm=arm, detail=f"{EFFECTS_FILE} recomputed from the traces: identical")


def json_differences(stored: Any, fresh: Any, path: str = "") -> Iterator[str]:
    """Paths where two JSON documents differ (floats within RTOL; NaN equals NaN)."""
    if isinstance(stored, dict) and isinstance(fresh, dict):
        for key in sorted(set(stored) | set(fresh), key=str):
            if not path and key in PATH_KEYS:
                continue
            if key not in stored or key not in fresh:
                yield f"{path}/{key}"
            else:
                yield from json_differences(stored[key], fresh[key], f"{path}/{key}")
    elif isinstance(stored, list) and isinstance(fresh, list):
        if len(stored) != len(fresh):
            yield f"{path} (length {len(stored)} != {len(fresh)})"
        else:
            for i, (a, b) in enumerate(zip(stored, fresh)):
                yield from json_differences(a, b, f"{path}[{i}]")
    elif isinstance(stored, (int, float)) and isinstance(fresh, (int, float)) and not isinstance(stored, bool):
        if not (math.isclose(stored, fresh, rel_tol=RTOL, abs_tol=1e-15)
                or (math.isnan(stored) and math.isnan(fresh))):
            yield f"{path} ({stored!r} != {fresh!r})"
    elif isinstance(stored, str) and isinstance(fresh, str):
        if stored != fresh:
            yield f"{path} ({text_difference(stored, fresh)})"
    elif stored != fresh:
        yield f"{path} ({str(stored)[:40]!r} != {str(fresh)[:40]!r})"


def text_difference(stored: str, fresh: str, width: int = 40) -> str:
    """Where two strings part: 'from character n: ...stored part != ...fresh part', so that two long sentences
    sharing their first words do not print as two equal-looking prefixes."""
    n = len(os.path.commonprefix([stored, fresh]))
    start = max(0, n - 10)
    lead = "..." if start else ""
    return f"from character {n}: {lead + stored[start:start + width]!r} != {lead + fresh[start:start + width]!r}"


def check_comparison(results: ResultsFolder | Path, scratch: Path) -> Check:
    """The stored comparison (comparison/comparison.json: statistics, claims, verdicts) equals one recomputed from
    both arms' traces with the pipeline's own settings and the fact subsets the run recorded."""
    results = ResultsFolder.of(results)
    stored_path = results.comparison_file
    if not stored_path.is_file():
        return Check("comparison_fresh", FAIL, detail=f"missing {stored_path}")
    stored = json.loads(stored_path.read_text())
    try:
        t2t_dir, s2t_dir = results.run_dir("t2t"), results.run_dir("s2t")
        subsets = results.subsets()
    except ResultsFolderError as error:  # the same words as every other reader of the folder
        return Check("comparison_fresh", FAIL, detail=str(error))
    fresh = compare_runs(t2t_dir, s2t_dir, scratch / "comparison", subsets=subsets)
    fresh = json.loads(json.dumps(fresh))  # the stored file went through JSON too
    differ = list(json_differences(stored, fresh))
    if differ:
        return Check("comparison_fresh", FAIL, observed=len(differ),
                     detail=stale_detail(stored_path, differ, "traces", "comparison"))
    return Check("comparison_fresh", PASS, detail=f"{COMPARISON_FILE} (statistics and claim verdicts) recomputed "
                                                  "from the traces: identical")


def check_recomputed(results: ResultsFolder | Path) -> list[Check]:
    """All of the above for a pipeline results folder; FAIL records instead of exceptions."""
    results = ResultsFolder.of(results)
    checks: list[Check] = []
    run_dirs: dict[str, Path] = {}
    for arm in ARMS:
        try:
            run_dirs[arm] = results.run_dir(arm)
        except ResultsFolderError as error:
            checks.append(Check("trace_files", FAIL, arm=arm, detail=str(error)))
    for arm, run_dir in run_dirs.items():
        checks.append(check_trace_files(run_dir, arm))
    if any(c.verdict == FAIL for c in checks):
        return checks  # nothing is recomputed from traces that are not the aggregated ones
    with tempfile.TemporaryDirectory(prefix="verify-recompute-") as tmp:
        scratch = Path(tmp)
        for arm, run_dir in run_dirs.items():
            checks.append(_guarded("aggregate_fresh", arm, lambda: check_aggregate(run_dir, arm, scratch)))
        if set(run_dirs) == set(ARMS):
            checks.append(_guarded("comparison_fresh", None,
                                   lambda: check_comparison(results, scratch)))
    return checks


def _guarded(name: str, arm: str | None, fn) -> Check:
    try:
        return fn()
    except Exception as error:  # a damaged trace or settings file: one FAIL line that names it
        return Check(name, FAIL, arm=arm, detail=f"recomputation failed: {type(error).__name__}: {error}")
