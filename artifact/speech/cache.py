"""Content-addressed cache of the front end's outputs under the project cache (`cache_root()/speech`).

A key is the sha256 of the canonical JSON of everything that determines an output (stage, input text or the key
of the upstream output, the backend's `settings()`), so a rerun is instant and a changed backend gets new files.
Files are written to a temporary name and renamed, so an interrupted run never leaves a partial entry.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Callable

import numpy as np

from artifact.core.fileio import write_atomic

SCHEMA = 1  # bump when the meaning of a cached output changes


def content_key(stage: str, **parts: Any) -> str:
    """sha256 hex of the canonical JSON of (schema, stage, parts)."""
    payload = json.dumps({"schema": SCHEMA, "stage": stage, **parts}, sort_keys=True, separators=(",", ":"),
                         ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class SpeechCache:
    """JSON and array entries by content key, in `root/<stage>/<key[:2]>/<key>.<ext>`. `root=None` disables it."""

    def __init__(self, root: Path | None) -> None:
        self.root = root
        self.hits = 0
        self.misses = 0

    def path(self, stage: str, key: str, ext: str) -> Path:
        assert self.root is not None
        return self.root / stage / key[:2] / f"{key}.{ext}"

    def json(self, stage: str, key: str, compute: Callable[[], Any]) -> Any:
        """The cached JSON value of (stage, key), computing and storing it when absent."""
        if self.root is not None:
            path = self.path(stage, key, "json")
            if path.is_file():
                self.hits += 1
                return json.loads(path.read_text())
        self.misses += 1
        value = compute()
        if self.root is not None:
            write_atomic(path, lambda h: h.write(json.dumps(value, ensure_ascii=False).encode("utf-8")))
        return value

    def array(self, stage: str, key: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
        """The cached array of (stage, key) (.npy), computing and storing it when absent."""
        if self.root is not None:
            path = self.path(stage, key, "npy")
            if path.is_file():
                self.hits += 1
                return np.load(path)
        self.misses += 1
        value = np.asarray(compute())
        if self.root is not None:
            write_atomic(path, lambda h: np.save(h, value))
        return value
