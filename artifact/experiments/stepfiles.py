"""The folder of a per-fact step (carry-over, and issue 30's implicit transcription and corruption choice): its
settings.json written once, or checked against a rerun's (finished fact files are reused, so results of other
settings must never be taken for these)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from artifact.core.fileio import read_json, write_json_atomic
from artifact.core.layout import CARRYOVER_FACTS_DIR, SETTINGS_FILE, ResultsFolderError


def open_step_dir(folder: Path, settings: dict[str, Any], what: str) -> Path:
    """`folder` with facts/ and settings.json (`settings`, plain JSON) written, or checked against a rerun's: a
    ResultsFolderError naming the settings that differ and the fix."""
    folder = Path(folder)
    path = folder / SETTINGS_FILE
    wanted = json.loads(json.dumps(settings))
    if path.is_file():
        stored = read_json(path)
        if stored != wanted:
            differ = sorted(k for k in set(wanted) | set(stored) if stored.get(k) != wanted.get(k))
            raise ResultsFolderError(f"{folder} holds {what} results of other settings ({', '.join(differ)} differ); "
                                     "remove that folder to recompute them, or pass another --out.")
    else:
        (folder / CARRYOVER_FACTS_DIR).mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, wanted)
    return folder


__all__ = ["open_step_dir"]
