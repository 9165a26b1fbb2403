"""verify.py's checks of issue 30's analyses (implicit transcription, corruption choice), as carry-over's
(`verification.carryover`): recompute, don't trust, then compare with the expected profile fact by fact.

Per analysis (`transcription`, `corruption`):
- <name>_files / <name>_fresh: every per-fact file against its facts.sha256, and the document recomputed from them
  (statistics, CIs, verdicts, sentences) with the artifact's own code;
- <name>_facts: the facts measured are the profile's;
- <name>_cells: per fact, cell by cell, within the same-seed tolerance: the lens's P curves (noise-free: either
  tier; the ranks enter through the recomputed depths),
  token replacement's group effects (deterministic: either tier), and the noise levels' group effects (the same-seed
  tier only).
A profile recorded before these analyses existed holds none of them: each check is then a SKIP "not recorded in this
profile", never a FAIL. So is an analysis the run (or the profile's run) left out by the pipeline's option
(`--no-corruption-choice`, the manifest's `left_out`): SKIP naming the option and how to add it. Recorded by
`record_beyond`: expected/<profile>/{transcription,corruption}/{<doc>.json, facts.npz}.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np

from artifact.analysis.corruption_document import corruption_document, fact_effects
from artifact.analysis.transcription_document import CURVES, load_transcription_files, transcription_document
from artifact.core.digests import read_digest_list
from artifact.core.fileio import sha256_file
from artifact.core.layout import (
    CARRYOVER_FACTS_DIR,
    CORRUPTION_DIR,
    CORRUPTION_RESULTS_FILE,
    MANIFEST_FILE,
    TRANSCRIPTION_DIR,
    TRANSCRIPTION_RESULTS_FILE,
)
from artifact.core.names import ARMS, OPTIONAL_STEPS
from artifact.core.results import ResultsFolder
from artifact.verification.records import FAIL, PASS, SKIP, Check
from artifact.verification.recompute import digest_problems, json_differences, stale_detail

STACKED_FILE = "facts.npz"
DIGESTS_FILE = "facts.sha256"
SHOWN = 3
NOT_RECORDED = "not recorded in this profile (recorded before this analysis existed): re-record the profile"


def left_out(manifest: Path) -> list[str]:
    """The steps a run left out (a pipeline manifest's `left_out`; a recorded profile's is in its `run_manifest`);
    [] when the file is absent or unreadable (other checks name that)."""
    try:
        document = json.loads(Path(manifest).read_text())
    except (OSError, ValueError):
        return []
    if isinstance(document, dict) and isinstance(document.get("run_manifest"), dict):
        document = document["run_manifest"]
    names = document.get("left_out") if isinstance(document, dict) else None
    return [str(n) for n in names] if isinstance(names, list) else []


def _left_out_reason(analysis: str, where: str) -> str:
    """Why an analysis left out by the run (`where` "run") or by the profile's run ("profile") is not checked."""
    option = OPTIONAL_STEPS.get(analysis, "an option")
    if where == "run":
        return (f"the run left it out ({option}); rerun the same ./run_all.sh command without {option}, with the "
                "same --out, to add and check it (finished steps are kept)")
    return (f"not recorded in this profile (its run left it out, {option}): record the profile from a run with it "
            "to check it")


def _transcription_arrays(results: ResultsFolder, document: dict[str, Any]) -> dict[str, np.ndarray]:
    arrays = load_transcription_files(results, document["known_ids"])
    return {name: arrays[name] for name in CURVES if "_prob_" in name}  # ranks: integers a rounding tie can flip


def _corruption_arrays(results: ResultsFolder, document: dict[str, Any]) -> dict[str, np.ndarray]:
    """Per arm, corruption, kind and metric the per-fact group effects [fact, group, layer] of the corruption's
    facts, keyed 'arm/corruption/kind/metric'."""
    run_dirs = results.run_dirs()
    out = {}
    for corruption, entry in document["corruptions"].items():
        if not entry["known_ids"]:
            continue
        for metric in entry["metrics"]:
            for kind in document["settings"]["kinds"]:
                for arm in ARMS:
                    out[f"{arm}/{corruption}/{kind}/{metric}"] = fact_effects(
                        results, run_dirs, arm, entry["known_ids"], corruption, kind, metric)[0]
    return out


def _recompute_transcription(results: ResultsFolder, document: dict[str, Any]) -> dict[str, Any]:
    return transcription_document(results, document["known_ids"])


def _recompute_corruption(results: ResultsFolder, document: dict[str, Any]) -> dict[str, Any]:
    return corruption_document(results, document["known_ids"], results.run_dirs())


class Analysis:
    """One of issue 30's analyses as verify sees it: its folder, document and how to recompute and stack it."""

    def __init__(self, name: str, folder: str, document: str, noise_free: Callable[[str], bool],
                 recompute: Callable[[ResultsFolder, dict[str, Any]], dict[str, Any]],
                 stack: Callable[[ResultsFolder, dict[str, Any]], dict[str, np.ndarray]]) -> None:
        self.name, self.folder, self.document = name, folder, document
        self.noise_free, self.recompute, self.stack = noise_free, recompute, stack

    def results_document(self, results: ResultsFolder) -> dict[str, Any] | None:
        path = results.path / self.folder / self.document
        return json.loads(path.read_text()) if path.is_file() else None


ANALYSES: tuple[Analysis, ...] = (
    Analysis("transcription", TRANSCRIPTION_DIR, TRANSCRIPTION_RESULTS_FILE, lambda key: True,
             _recompute_transcription, _transcription_arrays),
    Analysis("corruption", CORRUPTION_DIR, CORRUPTION_RESULTS_FILE,
             lambda key: key.split("/")[1] == "replacement", _recompute_corruption, _corruption_arrays),
)


def record_beyond(results: ResultsFolder | Path, profile: Path) -> list[str]:
    """Copy each analysis's document and stacked per-fact arrays into the profile; notes on what was recorded."""
    results = ResultsFolder.of(results)
    notes = []
    for analysis in ANALYSES:
        document = analysis.results_document(results)
        if document is None:
            continue
        folder = Path(profile) / analysis.folder
        folder.mkdir(parents=True, exist_ok=True)
        arrays = analysis.stack(results, document)
        np.savez_compressed(folder / STACKED_FILE, known_id=np.asarray(document["known_ids"]), **arrays)
        (folder / analysis.document).write_text((results.path / analysis.folder / analysis.document).read_text())
        notes.append(f"recorded {analysis.name} results of {len(document['known_ids'])} facts")
    return notes


def check_recomputed(results: ResultsFolder, analysis: Analysis) -> list[Check]:
    """<name>_files and <name>_fresh for a run that has the analysis (none: no checks)."""
    document = analysis.results_document(results)
    if document is None:
        return []
    folder = results.path / analysis.folder
    listing = folder / DIGESTS_FILE
    if not listing.is_file():
        return [Check(f"{analysis.name}_files", FAIL, detail=f"missing {listing}: the {analysis.name} step writes it "
                                                             f"beside {analysis.document}; rerun that step")]
    listed = read_digest_list(listing)
    present = {path.relative_to(folder).as_posix(): sha256_file(path)
               for path in sorted(folder.glob(f"{CARRYOVER_FACTS_DIR}/**/*.npz"))}
    problems = digest_problems(listed, present)
    if problems:
        return [Check(f"{analysis.name}_files", FAIL, observed=len(present), expected=len(listed),
                      detail=f"{analysis.name} fact files do not match {listing.name}: " + "; ".join(problems))]
    checks = [Check(f"{analysis.name}_files", PASS, observed=len(present), expected=len(listed),
                    detail=f"{len(listed)} {analysis.name} fact files match their sha256 in {listing.name}")]
    try:
        fresh = json.loads(json.dumps(analysis.recompute(results, document)))
    except Exception as error:  # a damaged or missing file: one FAIL line naming it
        return checks + [Check(f"{analysis.name}_fresh", FAIL, detail=f"recomputation failed: "
                                                                      f"{type(error).__name__}: {error}")]
    differ = list(json_differences(document, fresh))
    if differ:
        checks.append(Check(f"{analysis.name}_fresh", FAIL, observed=len(differ),
                            detail=stale_detail(folder / analysis.document, differ, "fact files", analysis.name)))
    else:
        checks.append(Check(f"{analysis.name}_fresh", PASS, detail=f"{analysis.document} recomputed from the fact "
                                                                   "files: identical"))
    return checks


def _cells(analysis: Analysis, name: str, regen: np.ndarray, expected: np.ndarray, tolerance: float) -> Check:
    """Largest |difference| over every fact and cell of one array, within `tolerance`."""
    check = f"{analysis.name}_cells"
    if regen.shape != expected.shape:
        return Check(check, FAIL, group=name, detail=f"{name}: shape {regen.shape} != expected {expected.shape} "
                                                     "(another plan or model)")
    diff = np.abs(regen.astype(np.float64) - expected.astype(np.float64))
    bad = np.isnan(regen.astype(np.float64)) != np.isnan(expected.astype(np.float64))
    worst = float(np.nanmax(diff)) if np.isfinite(diff).any() else 0.0
    verdict = PASS if worst <= tolerance and not bad.any() else FAIL
    where = ""
    if verdict == FAIL and np.isfinite(diff).any():
        where = f"; largest at {np.unravel_index(int(np.nanargmax(diff)), diff.shape)} (fact axis first)"
    return Check(check, verdict, group=name, observed=worst, tolerance=tolerance,
                 detail=f"{name}: largest |difference| {worst:.3g} of {tolerance:.3g}"
                        + (f"; {int(bad.sum())} cells NaN in one only" if bad.any() else "") + where)


def _tolerance_of(tolerance: float | dict[str, float], name: str) -> float:
    """The same-seed tolerance of an array: its metric's ('prob' / 'logprob'), else the profile's largest."""
    if not isinstance(tolerance, dict):
        return float(tolerance)
    metric = "logprob" if "logprob" in name else "prob" if "prob" in name else None
    return float(tolerance.get(metric, max(tolerance.values())) if metric else max(tolerance.values()))


def check_against_profile(results: ResultsFolder, profile: Path, analysis: Analysis, same_seed: bool,
                          tolerance: float | dict[str, float] | None) -> tuple[list[Check], dict[str, str]]:
    """<name>_facts and <name>_cells against the profile's recorded arrays; SKIP when the profile has none."""
    stacked = Path(profile) / analysis.folder / STACKED_FILE
    document = analysis.results_document(results)
    skipped: dict[str, str] = {}
    if not stacked.is_file():
        if document is None:
            return [], skipped
        reason = (_left_out_reason(analysis.name, "profile")
                  if analysis.name in left_out(Path(profile) / MANIFEST_FILE) else NOT_RECORDED)
        skipped[f"{analysis.name} cells"] = reason
        return [Check(f"{analysis.name}_cells", SKIP, detail=f"{analysis.name}: {reason}")], skipped
    if document is None:
        if analysis.name in left_out(results.manifest_file):
            reason = _left_out_reason(analysis.name, "run")
            skipped[f"{analysis.name} cells"] = reason
            return [Check(f"{analysis.name}_facts", SKIP, detail=f"{analysis.name}: {reason}")], skipped
        return [Check(f"{analysis.name}_facts", FAIL, detail=f"the profile records {analysis.name} results, the run "
                                                             f"has none ({analysis.folder}/{analysis.document}): "
                                                             "rerun the same ./run_all.sh command")], skipped
    with np.load(stacked, allow_pickle=False) as data:
        expected = {k: data[k] for k in data.files}
    exp_ids = [str(i) for i in expected.pop("known_id")]
    if document["known_ids"] != exp_ids:
        return [Check(f"{analysis.name}_facts", FAIL, observed=len(document["known_ids"]), expected=len(exp_ids),
                      detail=f"the {analysis.name} facts differ from the profile's: the measured set changed")], skipped
    checks = [Check(f"{analysis.name}_facts", PASS, observed=len(exp_ids), expected=len(exp_ids),
                    detail=f"the same {len(exp_ids)} facts as the profile")]
    if tolerance is None:
        skipped[f"{analysis.name} cells"] = "the profile has no same-seed tolerance"
        return checks, skipped
    try:
        regen = analysis.stack(results, document)
    except Exception as error:  # noqa: BLE001 - a damaged file: one FAIL line
        return checks + [Check(f"{analysis.name}_cells", FAIL, detail=f"could not read the fact files: "
                                                                      f"{type(error).__name__}: {error}")], skipped
    missing = sorted(set(expected) - set(regen))
    if missing:
        checks.append(Check(f"{analysis.name}_cells", FAIL, detail=f"the run lacks {missing[:SHOWN]}"))
    other_seed = []
    for name in sorted(set(expected) & set(regen)):
        if same_seed or analysis.noise_free(name):
            checks.append(_cells(analysis, name, regen[name], expected[name], _tolerance_of(tolerance, name)))
        else:
            other_seed.append(name)
    if other_seed:
        skipped[f"{analysis.name} noise cells (other seed)"] = (
            f"{len(other_seed)} arrays drawn with noise were not compared in the other-seed tier (the profile "
            "records no other-seed spread for them); the noise-free ones were")
    return checks, skipped


def beyond_verdicts(results: ResultsFolder | Path, profile: Path, same_seed: bool,
                    tolerance: float | dict[str, float] | None, recompute: bool = True
                    ) -> tuple[list[Check], dict[str, str]]:
    """What verify() adds for issue 30's analyses: recomputation when the run has them (unless `recompute` is off),
    comparison when the profile has them, SKIP when only the run does."""
    results = ResultsFolder.of(results)
    checks: list[Check] = []
    skipped: dict[str, str] = {}
    for analysis in ANALYSES:
        if recompute:
            checks += check_recomputed(results, analysis)
        more, not_done = check_against_profile(results, profile, analysis, same_seed, tolerance)
        checks += more
        skipped.update(not_done)
    return checks, skipped


__all__ = ["ANALYSES", "beyond_verdicts", "check_against_profile", "check_recomputed", "left_out", "record_beyond"]
