"""Content-addressed cache of the front end's outputs under the project cache (`cache_root()/speech`).

A key is the sha256 of the canonical JSON of everything that determines an output (stage, input text or the key
of the upstream output, the backend's `settings()`), so a rerun is instant and a changed backend gets new files.
Files are written to a temporary name and renamed, so an interrupted run never leaves a partial entry; each entry's
sha256 is stored beside it (`<entry>.sha256`, written first), and an entry that does not match it, or does not parse,
is computed again and replaced. Two processes filling one entry write the same bytes, each atomically, so a reader
sees one whole entry or none. A read-only cache is read; what it lacks is computed and not stored (one warning).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from pathlib import Path
from typing import Any, Callable

import numpy as np

from artifact.core.fileio import DiskFullError, write_atomic

log = logging.getLogger(__name__)

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
        self.read_only = False  # set after the first failed write: a read-only cache is still read

    def path(self, stage: str, key: str, ext: str) -> Path:
        assert self.root is not None
        return self.root / stage / key[:2] / f"{key}.{ext}"

    def json(self, stage: str, key: str, compute: Callable[[], Any]) -> Any:
        """The cached JSON value of (stage, key), computing and storing it when absent or damaged."""
        return self._entry(stage, key, "json", compute,
                           lambda data: json.loads(data.decode("utf-8")),
                           lambda value: json.dumps(value, ensure_ascii=False).encode("utf-8"))

    def array(self, stage: str, key: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
        """The cached array of (stage, key) (.npy), computing and storing it when absent or damaged."""
        return self._entry(stage, key, "npy", lambda: np.asarray(compute()),
                           lambda data: np.load(io.BytesIO(data), allow_pickle=False), _npy_bytes)

    def _entry(self, stage: str, key: str, ext: str, compute: Callable[[], Any], decode: Callable[[bytes], Any],
               encode: Callable[[Any], bytes]) -> Any:
        if self.root is not None:
            path = self.path(stage, key, ext)
            if path.is_file():
                data = path.read_bytes()
                try:
                    value = self._check(path, data, decode)
                    self.hits += 1
                    return value
                except (ValueError, EOFError, OSError) as error:
                    log.warning("speech cache entry %s is damaged (%s): computing it again", path, error)
        self.misses += 1
        value = compute()
        if self.root is not None and not self.read_only:
            data = encode(value)
            digest = hashlib.sha256(data).hexdigest()
            try:
                write_atomic(_digest_path(path), lambda h: h.write(f"{digest}  {path.name}\n".encode()))
                write_atomic(path, lambda h: h.write(data))
            except DiskFullError:
                raise
            except OSError as error:  # a read-only cache: use it, store nothing, say so once
                self.read_only = True
                log.warning("speech cache %s is not writable (%s): new entries are computed but not stored",
                            self.root, error.strerror or error)
        return value

    @staticmethod
    def _check(path: Path, data: bytes, decode: Callable[[bytes], Any]) -> Any:
        """The decoded entry, after its sha256 is checked against the stored one (entries written before digests
        existed have none: they are only decoded)."""
        digest_path = _digest_path(path)
        if digest_path.is_file():
            stored = digest_path.read_text().split(" ", 1)[0]
            if hashlib.sha256(data).hexdigest() != stored:
                raise ValueError(f"its sha256 differs from {digest_path.name}")
        return decode(data)


def _digest_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _npy_bytes(value: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, value, allow_pickle=False)
    return buffer.getvalue()
