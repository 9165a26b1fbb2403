"""Where things live on disk: the files of a run folder, of a pipeline's results folder and of an expected profile.

    results/<model>-<profile>/                 a pipeline run (run_all.sh)
        pipeline.json steps.json selection.json manifest.json
        runs/<arm>-<model>-<key>/              one run folder per arm (the runner's)
            settings.json known.json speech.json plan.json plans/ .lock
            traces/<job>/<known_id>.npz        one result per fact and job
            aggregate/{aie.csv, aie.json, severed.csv, group_effects.npz}
            figures/
        comparison/{comparison.json, comparison.md, summary.md, figures/}
        carryover/                             the carry-over step (cross-modal patching, knockout, logit lens)
            settings.json facts/<known_id>.npz carryover.json facts.sha256 summary.md figures/
        transcription/                         implicit transcription (issue 30): the subject's text at its speech
            settings.json facts/<known_id>.npz transcription.json facts.sha256 summary.md figures/
        corruption/                            corruption choice (issue 30): noise at 1/3/5 sigma, token replacement
            settings.json pairing.json facts/<arm>/<known_id>.npz corruption.json facts.sha256 summary.md figures/
        verify/{report.md, report.json}
    expected/<model>-<profile>/                what verify.py compares against
        <arm>/{group_effects.npz, known_ids.json, settings.json}
        carryover/{carryover.json, facts.npz}
        transcription/{transcription.json, facts.npz}  corruption/{corruption.json, facts.npz}
        claims.json tolerances.json manifest.json

A results folder is read through one object, `artifact.core.results.ResultsFolder`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

# ---------------------------------------------------------------------------------------------- a run folder
SETTINGS_FILE = "settings.json"
KNOWN_FILE = "known.json"
SPEECH_FILE = "speech.json"
PLAN_FILE = "plan.json"
PLANS_DIR = "plans"
LOCK_FILE = ".lock"
TRACES_DIR = "traces"
AGGREGATE_DIR = "aggregate"
AIE_JSON = "aie.json"
AIE_CSV = "aie.csv"
SEVERED_CSV = "severed.csv"
EFFECTS_FILE = "group_effects.npz"
TRACE_LIST_FILE = "traces.sha256"  # in aggregate/: the trace files the aggregate was computed from, with sha256
FIGURES_DIR = "figures"

# --------------------------------------------------------------------------------- a pipeline's results folder
PIPELINE_FILE = "pipeline.json"
STEPS_FILE = "steps.json"
RESULTS_LOCK_FILE = ".run.lock"  # held (flock) by the one pipeline run working in a results folder
SELECTION_FILE = "selection.json"
MANIFEST_FILE = "manifest.json"
RUNS_DIR = "runs"
COMPARISON_DIR = "comparison"
COMPARISON_FILE = "comparison.json"
COMPARISON_MD = "comparison.md"
SUMMARY_FILE = "summary.md"
VERIFY_DIR = "verify"
REPORT_JSON = "report.json"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"  # the one page to read a run (artifact.report)

# ------------------------------------------------------------------------- the carry-over step, in a results folder
CARRYOVER_DIR = "carryover"  # holds settings.json (SETTINGS_FILE), summary.md (SUMMARY_FILE) and figures/ too
CARRYOVER_FACTS_DIR = "facts"  # one npz per fact
CARRYOVER_RESULTS_FILE = "carryover.json"  # the statistics of every fact set
CARRYOVER_DIGESTS_FILE = "facts.sha256"  # the fact files carryover.json was computed from, with sha256

# ------------------------------------------------------------ issue 30's steps after carry-over, in a results folder
TRANSCRIPTION_DIR = "transcription"  # like carryover/: settings.json, facts/, facts.sha256, summary.md, figures/
TRANSCRIPTION_RESULTS_FILE = "transcription.json"
CORRUPTION_DIR = "corruption"  # the same, with facts/<arm>/ and pairing.json (token replacement's partners)
CORRUPTION_RESULTS_FILE = "corruption.json"
PAIRING_FILE = "pairing.json"

# ------------------------------------------------------------------------------------------ an expected profile
KNOWN_IDS_FILE = "known_ids.json"
CLAIMS_FILE = "claims.json"
TOLERANCES_FILE = "tolerances.json"


class ResultsFolderError(ValueError):
    """A results folder does not match the settings it is used with, or is not a results folder at all."""


def fact_file_id(known_id: Any) -> str:
    """A fact's id as a safe file stem."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(known_id)) or "_"


def result_path(run_dir: Path, job: str, known_id: Any) -> Path:
    """Where the result of `job` for fact `known_id` lives in a run folder."""
    return Path(run_dir) / TRACES_DIR / job / f"{fact_file_id(known_id)}.npz"


def comparison_file(results: Path) -> Path:
    """The comparison document of a pipeline's results folder."""
    return Path(results) / COMPARISON_DIR / COMPARISON_FILE


def carryover_fact_path(results: Path, known_id: Any) -> Path:
    """Where the carry-over step stores one fact's arrays in a results folder."""
    return Path(results) / CARRYOVER_DIR / CARRYOVER_FACTS_DIR / f"{fact_file_id(known_id)}.npz"


def transcription_fact_path(results: Path, known_id: Any) -> Path:
    """Where the implicit-transcription step stores one fact's lens arrays in a results folder."""
    return Path(results) / TRANSCRIPTION_DIR / CARRYOVER_FACTS_DIR / f"{fact_file_id(known_id)}.npz"


def corruption_fact_path(results: Path, arm: str, known_id: Any) -> Path:
    """Where the corruption-choice step stores one fact's traces of one arm in a results folder."""
    return Path(results) / CORRUPTION_DIR / CARRYOVER_FACTS_DIR / arm / f"{fact_file_id(known_id)}.npz"


def plan_path(run_dir: Path, shard_name: str | None = None) -> Path:
    """The plan file of the whole run (plan.json) or of one shard (plans/<shard name>.json, e.g. shard-2-of-8)."""
    if shard_name is None:
        return Path(run_dir) / PLAN_FILE
    return Path(run_dir) / PLANS_DIR / f"{shard_name}.json"


def plan_files(run_dir: Path) -> list[Path]:
    """Every plan file of a run folder: plan.json (unsharded runs) and plans/*.json (shards)."""
    run_dir = Path(run_dir)
    found = [run_dir / PLAN_FILE] if (run_dir / PLAN_FILE).is_file() else []
    if (run_dir / PLANS_DIR).is_dir():
        found += sorted(p for p in (run_dir / PLANS_DIR).glob("*.json") if not p.name.startswith("."))
    return found
