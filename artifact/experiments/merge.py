"""`merge`: join the run folders of shards that ran without a shared filesystem into one run folder.

Only folders of the same settings are merged (settings.json: same key, same resolved noise up to 1e-9, as a resumed
run requires). A result file present in several folders must be the same bytes; a conflicting duplicate (same fact
and job, different numbers) stops the merge before anything is copied. Plan files are copied the same way, so
`aggregate` on the merged folder reports results still missing; known.json files must agree on which facts are
known. Copies are atomic (temporary file, then rename) and a rerun copies only what is new.
"""


from __future__ import annotations

import json
import logging
import math
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from artifact.core.fileio import TMP_PREFIX, write_atomic
from artifact.core.layout import KNOWN_FILE, PLAN_FILE, PLANS_DIR, SETTINGS_FILE
from artifact.core.settings import load_settings

log = logging.getLogger(__name__)


class MergeError(ValueError):
    """Folders that cannot be merged: other settings, not results folders, or conflicting duplicate results."""


@dataclass
class MergeReport:
    """What `merge_runs` did: files copied and files already present with the same content, per kind of file."""

    into: Path
    sources: list[Path]
    copied: Counter = field(default_factory=Counter)  # "traces/<job>", "plans", "known.json" -> files copied
    identical: Counter = field(default_factory=Counter)  # same keys -> files already present (same content)


def run_folder(path: Path) -> Path:
    """`path` if it holds settings.json, else its only child run folder (a shard's --out root)."""
    path = Path(path)
    if not (path / SETTINGS_FILE).is_file() and path.is_dir():
        children = sorted(p.parent for p in path.glob(f"*/{SETTINGS_FILE}"))
        if len(children) == 1:
            return children[0]
    load_settings(path)  # raises, naming the run folders inside when there are several
    return path


def _same_settings(a: dict, b: dict) -> bool:
    """Equal settings, the resolved noise compared as `open_run_dir` does (relative 1e-9)."""
    noise_a, noise_b = a.get("noise"), b.get("noise")
    rest_a = {k: v for k, v in a.items() if k != "noise"}
    rest_b = {k: v for k, v in b.items() if k != "noise"}
    return rest_a == rest_b and math.isclose(float(noise_a), float(noise_b), rel_tol=1e-9, abs_tol=0.0)


def _known_decisions(path: Path) -> tuple:
    document = json.loads(path.read_text())
    return (document["rule"], document["modality"],
            [(str(row["known_id"]), bool(row.get("known"))) for row in document["checks"]])


def _mergeable_files(folder: Path) -> list[Path]:
    """Relative paths of the files a merge carries over: results, plan files and known.json."""
    found = [p for p in (folder / "traces").glob("*/*.npz")] + [p for p in (folder / PLANS_DIR).glob("*.json")]
    found += [folder / name for name in (PLAN_FILE, KNOWN_FILE) if (folder / name).is_file()]
    return sorted(p.relative_to(folder) for p in found if not p.name.startswith(TMP_PREFIX) and p.is_file())


def _category(relative: Path) -> str:
    """'traces/<job>' for results, 'plans' for shard plans, else the file name (plan.json, known.json)."""
    return relative.parent.as_posix() if len(relative.parts) > 1 else relative.name


def merge_runs(into: Path, sources: list[Path]) -> MergeReport:
    """Copy the results, plan files and known.json of `sources` (run folders of one run's shards) into the run
    folder `into` (created if absent); nothing is copied when settings differ or duplicates conflict."""
    from artifact.experiments.runner import run_lock  # lazy: torch

    if not sources:
        raise MergeError("merge needs at least one source folder: merge --into DIR SRC [SRC ...]")
    into = Path(into)
    folders = [run_folder(s) for s in sources]
    if into.resolve() in {f.resolve() for f in folders}:
        raise MergeError(f"{into} is both a source and the target; merge into another folder.")
    reference = json.loads((folders[0] / SETTINGS_FILE).read_text())
    for folder in folders[1:] + ([into] if (into / SETTINGS_FILE).is_file() else []):
        other = json.loads((folder / SETTINGS_FILE).read_text())
        if not _same_settings(reference, other):
            diff = {k: (reference.get(k), other.get(k)) for k in sorted(set(reference) | set(other))
                    if reference.get(k) != other.get(k)}
            raise MergeError(f"{folder} holds results of other settings than {folders[0]} ({diff}); only shards of "
                             "one run (same command, same settings) can be merged.")
    if into.is_dir() and not (into / SETTINGS_FILE).is_file() and any(into.iterdir()):
        raise MergeError(f"{into} exists but is not a results folder (no {SETTINGS_FILE}); merge into a new or "
                         "empty folder, or into a run folder of the same settings.")

    chosen: dict[Path, Path] = {}  # relative path -> the source file copied there
    conflicts: list[str] = []
    report = MergeReport(into, folders)
    for folder in folders:
        for relative in _mergeable_files(folder):
            source = folder / relative
            first = chosen.get(relative) or (into / relative if (into / relative).is_file() else None)
            if first is None:
                chosen[relative] = source
                continue
            if relative.name == KNOWN_FILE and relative.parent == Path("."):
                same = _known_decisions(first) == _known_decisions(source)
            else:
                same = first.stat().st_size == source.stat().st_size and first.read_bytes() == source.read_bytes()
            if not same:
                conflicts.append(f"{relative} ({first} vs {source})")
            else:
                report.identical[_category(relative)] += 1
    if conflicts:
        raise MergeError(f"{len(conflicts)} conflicting duplicate file(s), same name but different content; nothing "
                         f"was copied: {'; '.join(conflicts[:5])}{' ...' if len(conflicts) > 5 else ''}. Results of "
                         "one fact must come from one shard: remove the wrong copy (or its whole folder) and merge "
                         "again.")
    with run_lock(into):  # refuses a folder a run (or a shard) is writing to
        for relative, source in [(Path(SETTINGS_FILE), folders[0] / SETTINGS_FILE), *chosen.items()]:
            if relative.name == SETTINGS_FILE and (into / SETTINGS_FILE).is_file():
                continue

            def copy(handle, source: Path = source) -> None:
                with open(source, "rb") as reader:
                    shutil.copyfileobj(reader, handle)

            write_atomic(into / relative, copy)
            if relative.name != SETTINGS_FILE:
                report.copied[_category(relative)] += 1
    return report
