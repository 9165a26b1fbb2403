"""carryover.json (issue 18): the carry-over statistics of every fact set, computed from the step's per-fact files
and the arms' own traces, with the sha256 list of the files it came from and the summaries in words. The pipeline
writes it after the carry-over step; verify.py recomputes it the same way (`carryover_document`), torch-free.

Fact sets: "all" (every fact the step measured) and each named subset of the S->T model (the embedded model's
"train" and "held_out" facts, as the run recorded them) that is neither empty nor all of them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from artifact.analysis.bootstrap import BOOTSTRAP_SEED, CONFIDENCE, N_RESAMPLES
from artifact.analysis.carryover import carryover_statistics
from artifact.analysis.carryover_summary import METHODS, SUMMARY_SECTION, sentences, summary_section
from artifact.analysis.effects import fact_effects
from artifact.analysis.step_files import stack_fact_files
from artifact.core.digests import write_digest_list
from artifact.core.fileio import sha256_file, write_atomic, write_json_atomic
from artifact.core.layout import CARRYOVER_FACTS_DIR, SETTINGS_FILE, SUMMARY_FILE, TRACES_DIR, fact_file_id
from artifact.core.names import GROUPS, MODALITY_ARMS
from artifact.core.results import ResultsFolder


def load_fact_files(results: ResultsFolder | Path, known_ids: Sequence[Any]) -> dict[str, np.ndarray]:
    """The listed facts' arrays stacked along a new first axis (fact), in the given order; a missing file is an error
    naming the step that writes it. Arrays some files lack (per-sample values, absent from files of older versions or
    of the hook path) are left out, so a stack never misaligns facts."""
    folder = ResultsFolder.of(results)
    return stack_fact_files([folder.carryover_fact(i) for i in known_ids], "carry-over", skip_suffix="_input_ids")


def own_restore_curves(run_dirs: dict[str, Path], known_ids: Sequence[str], kinds: Sequence[str],
                       positions: Sequence[str]) -> dict[tuple[str, str, str], np.ndarray]:
    """The arms' own causal-trace curves [fact, layer] (metric prob) at each mapped token group, in `known_ids` order,
    keyed (modality, kind, position), from the run folders {arm: folder}; kinds an arm did not trace, or facts it
    lacks, are left out."""
    out: dict[tuple[str, str, str], np.ndarray] = {}
    for modality, arm in MODALITY_ARMS.items():
        run_dir = Path(run_dirs[arm])
        for kind in kinds:
            if not (run_dir / TRACES_DIR / kind).is_dir():
                continue
            fe = fact_effects(run_dir, kind, "prob", known_ids)
            index = {str(i): n for n, i in enumerate(fe.known_ids)}
            if any(str(i) not in index for i in known_ids):
                continue
            order = [index[str(i)] for i in known_ids]
            for position in positions:
                out[(modality, kind, position)] = fe.effects[order, GROUPS.index(position)]
    return out


def carryover_document(results: ResultsFolder | Path, known_ids: Sequence[Any], run_dirs: dict[str, Path],
                       subsets: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """The statistics of every fact set (all, and each subset that is neither empty nor all of them) from the
    per-fact files and the arms' traces (`run_dirs` {arm: run folder}); what carryover.json holds."""
    folder = ResultsFolder.of(results)
    settings = json.loads((folder.carryover_dir / SETTINGS_FILE).read_text())
    plan = settings["plan"]
    ids = [str(i) for i in known_ids]
    sets = {"all": ids}
    for name, members in (subsets or {}).items():
        chosen = [i for i in ids if i in set(map(str, members))]
        if chosen and chosen != ids:
            sets[name] = chosen
    document: dict[str, Any] = {"settings": settings, "methods": METHODS,
                                "bootstrap": {"confidence": CONFIDENCE, "n_resamples": N_RESAMPLES,
                                              "seed": BOOTSTRAP_SEED},
                                "sets": {}}
    every = load_fact_files(folder, ids)  # read once; each set takes its rows
    every_own = own_restore_curves(run_dirs, ids, plan["patch_kinds"], plan["positions"]) \
        if "patching" in plan["analyses"] else {}
    layers = int(every["knockout_prob"].shape[-1] if every["knockout_prob"].size else every["patch_prob"].shape[-1])
    row = {i: n for n, i in enumerate(ids)}
    for name, members in sets.items():
        rows = [row[i] for i in members]
        arrays = {key: value[rows] for key, value in every.items()}
        own = {key: value[rows] for key, value in every_own.items()}
        stats = carryover_statistics(arrays, own, plan)
        document["sets"][name] = {"known_ids": members, "statistics": stats, "sentences": sentences(stats, layers)}
    document["layers"] = layers
    document["subsets"] = {name: [str(i) for i in members] for name, members in (subsets or {}).items()}
    return document


def fact_digests(results: ResultsFolder | Path, known_ids: Sequence[Any]) -> dict[str, str]:
    """sha256 of each listed fact's file, keyed by its path relative to carryover/."""
    folder = ResultsFolder.of(results)
    return {f"{CARRYOVER_FACTS_DIR}/{fact_file_id(i)}.npz": sha256_file(folder.carryover_fact(i)) for i in known_ids}


def aggregate_carryover(results: ResultsFolder | Path, known_ids: Sequence[Any], run_dirs: dict[str, Path],
                        subsets: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """carryover/carryover.json (`carryover_document`) and facts.sha256 (the files it was computed from); returns the
    document."""
    folder = ResultsFolder.of(results)
    document = carryover_document(folder, known_ids, run_dirs, subsets)
    write_json_atomic(folder.carryover_file, document)
    write_digest_list(folder.carryover_digests, fact_digests(folder, [str(i) for i in known_ids]))
    return document


def write_summaries(results: ResultsFolder | Path, document: dict[str, Any]) -> None:
    """carryover/summary.md, and the same section in the comparison's summary.md when there is one (replacing an
    earlier one)."""
    folder = ResultsFolder.of(results)
    section = summary_section(document)
    write_atomic(folder.carryover_dir / SUMMARY_FILE, lambda h: h.write(section.encode()))
    if folder.summary_file.is_file():
        text = folder.summary_file.read_text()
        head = text.split(SUMMARY_SECTION)[0].rstrip("\n")
        merged = head + "\n\n" + section
        write_atomic(folder.summary_file, lambda h: h.write(merged.encode()))
