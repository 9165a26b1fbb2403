"""What the documents of the per-fact steps after the comparison (carry-over, implicit transcription, corruption
choice) share: their fact files read and stacked over facts, with one error naming the fix for a missing or damaged
file, and their summary section written beside them and into the comparison's summary.md."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from artifact.core.fileio import DamagedFileError, npz_problem, write_atomic
from artifact.core.layout import SUMMARY_FILE
from artifact.core.results import ResultsFolder


def stack_fact_files(paths: Sequence[Path], step: str, names: Sequence[str] | None = None,
                     skip_suffix: str | None = None) -> dict[str, np.ndarray]:
    """The arrays of one step's fact files `paths` stacked along a new first axis (fact), in the given order: the
    `names` (each file must hold them), or every array but those ending in `skip_suffix`; arrays some files lack
    (per-sample values absent from older files) are left out, so a stack never misaligns facts. A missing file is a
    FileNotFoundError, a damaged one a DamagedFileError, each naming the `step` that writes it and the fix."""
    stacked: dict[str, list[np.ndarray]] = {}
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: the {step} step writes one file per fact (rerun the same "
                                    "./run_all.sh command to compute it)")
        problem = npz_problem(path)
        if problem is not None:
            raise DamagedFileError(path, problem, f"Delete it and rerun the same ./run_all.sh command: the {step} "
                                                  "step computes it again.")
        with np.load(path, allow_pickle=False) as data:
            for name in data.files if names is None else names:
                if skip_suffix is None or not name.endswith(skip_suffix):
                    stacked.setdefault(name, []).append(data[name])
    return {name: np.stack(values) for name, values in stacked.items() if len(values) == len(paths)}


def write_step_summary(results: ResultsFolder | Path, step_dir: str, heading: str, section: str) -> None:
    """A step's summary section (starting with `heading`) as <step_dir>/summary.md, and the same section in the
    comparison's summary.md (`replace_section`)."""
    folder = ResultsFolder.of(results)
    write_atomic(folder.path / step_dir / SUMMARY_FILE, lambda h: h.write(section.encode()))
    replace_section(folder.summary_file, heading, section)


def replace_section(path: Path, heading: str, section: str) -> None:
    """Put `section` (starting with `heading`) into the markdown file `path` when it exists: an earlier copy of that
    section (up to the next '## ' heading) is replaced, else it is appended."""
    if not Path(path).is_file():
        return
    text = Path(path).read_text()
    if heading in text:
        before, _, after = text.partition(heading)
        rest = after.split("\n## ", 1)
        tail = ("\n## " + rest[1]) if len(rest) > 1 else ""
        merged = before.rstrip("\n") + "\n\n" + section.rstrip("\n") + "\n" + tail
    else:
        merged = text.rstrip("\n") + "\n\n" + section
    write_atomic(Path(path), lambda h: h.write(merged.encode()))


__all__ = ["replace_section", "stack_fact_files", "write_step_summary"]
