"""One pipeline results folder (`core.layout`'s tree), opened once: where each arm's run folder, the comparison, the
carry-over results and the verify report are, and what the run recorded for the steps after it (the speech model's
fact subsets). The pipeline, verify and report.html all read a results folder through this object, so an arm's run
folder is found by one rule and a folder that breaks it gives the same error everywhere.

The rule (`run_dir`): the run folder selection.json names for the arm (the pipeline writes it in its known step);
without one, the only `runs/<arm>-*` (or `<arm>-*`) folder; otherwise a `ResultsFolderError` that names the folders
and the fix. It is applied once per arm and the outcome kept.

Standard library only: verify and report.html use it where torch and numpy may be absent.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from artifact.core.layout import (
    CARRYOVER_DIGESTS_FILE,
    CARRYOVER_DIR,
    CARRYOVER_RESULTS_FILE,
    COMPARISON_DIR,
    COMPARISON_FILE,
    MANIFEST_FILE,
    REPORT_JSON,
    RUNS_DIR,
    SELECTION_FILE,
    SETTINGS_FILE,
    SUMMARY_FILE,
    VERIFY_DIR,
    ResultsFolderError,
    carryover_fact_path,
)
from artifact.core.names import ARMS, EMBEDDED_SPEECH

SUBSETS_KEY = "subsets"  # selection.json: the S->T model's named fact subsets ({} when it has none)


def _json_object(path: Path) -> dict[str, Any]:
    """A JSON file holding an object; a ResultsFolderError naming the file otherwise."""
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ResultsFolderError(f"unreadable {path}: {error}; restore it or rerun the pipeline") from None
    if not isinstance(document, dict):
        raise ResultsFolderError(f"{path} holds no JSON object; restore it or rerun the pipeline")
    return document


class MissingRunFolderError(ResultsFolderError):
    """A results folder holds no run folder for an arm (an arm not run yet, or a claims-only folder)."""


class ResultsFolder:
    """A pipeline's results folder, with typed accessors; arm run folders resolved once (`run_dir`)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._runs: dict[str, Path | ResultsFolderError] = {}
        # the derived files, where the pipeline writes them
        self.manifest_file = self.path / MANIFEST_FILE
        self.comparison_dir = self.path / COMPARISON_DIR
        self.comparison_file = self.comparison_dir / COMPARISON_FILE  # statistics and claim verdicts
        self.summary_file = self.comparison_dir / SUMMARY_FILE  # the claims in words, and the carry-over section
        self.carryover_dir = self.path / CARRYOVER_DIR
        self.carryover_file = self.carryover_dir / CARRYOVER_RESULTS_FILE  # carry-over statistics of every fact set
        self.carryover_digests = self.carryover_dir / CARRYOVER_DIGESTS_FILE  # the fact files they came from
        self.verify_dir = self.path / VERIFY_DIR
        self.verify_report = self.verify_dir / REPORT_JSON  # every check of verify.py

    @classmethod
    def of(cls, results: "ResultsFolder | Path | str") -> "ResultsFolder":
        """`results` itself when it is already a ResultsFolder (keeping what it resolved), else a new one."""
        return results if isinstance(results, ResultsFolder) else cls(Path(results))

    def __repr__(self) -> str:
        return f"ResultsFolder({str(self.path)!r})"

    # ------------------------------------------------------------------------------------------- the run folders
    def selection(self) -> dict[str, Any] | None:
        """selection.json (which run folder of each arm, which facts were traced), None when absent; a
        ResultsFolderError when it is not a JSON object."""
        path = self.path / SELECTION_FILE
        return _json_object(path) if path.is_file() else None

    def run_dir(self, arm: str) -> Path:
        """The run folder of `arm` ('t2t' or 's2t') by the rule above; the same folder (or error) on every call."""
        if arm not in ARMS:
            raise ValueError(f"arm must be one of {', '.join(ARMS)}; got {arm!r}")
        if arm not in self._runs:
            try:
                self._runs[arm] = self._find(arm)
            except ResultsFolderError as error:
                self._runs[arm] = error
        found = self._runs[arm]
        if isinstance(found, ResultsFolderError):
            raise found
        return found

    def run_dirs(self) -> dict[str, Path]:
        """Both arms' run folders, {arm: folder} in ARMS order; raises for the first arm without one."""
        return {arm: self.run_dir(arm) for arm in ARMS}

    def _find(self, arm: str) -> Path:
        roots = (self.path / RUNS_DIR, self.path)
        selection = self.selection()
        name = (selection or {}).get(f"{arm}_run")
        if name:
            for root in roots:
                if (root / str(name)).is_dir():
                    return root / str(name)
            raise MissingRunFolderError(f"missing run folder: {self.path / RUNS_DIR / str(name)} (named by "
                                        f"{self.path / SELECTION_FILE}); restore it or rerun the pipeline")
        candidates = sorted({p for root in roots if root.is_dir() for p in root.glob(f"{arm}-*") if p.is_dir()})
        if not candidates:
            raise MissingRunFolderError(f"missing run folder: no {arm} run folder in {self.path} (looked for "
                                        f"{RUNS_DIR}/{arm}-*)")
        if len(candidates) > 1:
            raise ResultsFolderError(
                f"several {arm} run folders in {self.path} ({', '.join(p.name for p in candidates)}) and no "
                f"{SELECTION_FILE} naming the one to use: keep one run folder per arm, or name it in "
                f"{SELECTION_FILE} as \"{arm}_run\" (the pipeline's known step writes it)")
        return candidates[0]

    def run_settings(self, arm: str) -> dict[str, Any]:
        """settings.json of the arm's run folder, as stored."""
        return _json_object(self.run_dir(arm) / SETTINGS_FILE)

    def subsets(self) -> dict[str, list[str]]:
        """The S->T model's named fact subsets the comparison and the carry-over statistics add as fact sets (the
        embedded speech-text model's "train" and "held_out" facts; {} for a model without), as the pipeline
        recorded them in selection.json. A folder without selection.json (run folders compared by hand) has none.
        A ResultsFolderError for an embedded run whose selection.json predates the record: verify must not guess
        them from the model package (which needs torch, and may have been retrained since)."""
        selection = self.selection()
        if selection is None:
            return {}
        if SUBSETS_KEY in selection:
            return {str(name): [str(i) for i in ids] for name, ids in (selection[SUBSETS_KEY] or {}).items()}
        try:
            model = self.run_settings("s2t").get("model")
        except ResultsFolderError:
            model = None
        if model != EMBEDDED_SPEECH:
            return {}
        raise ResultsFolderError(
            f"{self.path / SELECTION_FILE} does not record the speech model's fact subsets (\"{SUBSETS_KEY}\": its "
            "training and held-out facts), which the comparison and carry-over statistics use: it was written by "
            "an older version of the pipeline. Rerun the pipeline with the same command (it adds them and resumes), "
            "or pass --no-recompute to verify without recomputing")

    # -------------------------------------------------------------------------------------------- derived files
    def carryover_fact(self, known_id: Any) -> Path:
        """carryover/facts/<known_id>.npz: one fact's carry-over arrays."""
        return carryover_fact_path(self.path, known_id)
