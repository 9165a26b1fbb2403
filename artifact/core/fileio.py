"""Torch-free file helpers shared by the runner, the model loader and the run manifest: atomic writes and sha256.

Kept free of heavy imports so that a shell script recording a step (`python -m artifact manifest --step`) stays fast.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable

TMP_PREFIX = ".tmp-"  # temporary files of atomic writes: `.tmp-<name>.<random>` beside the target


def write_atomic(path: Path, write: Callable[[BinaryIO], Any]) -> None:
    """Write to a temporary file beside `path` with `write(handle)`, fsync, then `os.replace` (atomic on POSIX):
    readers never see a half-written file, and a killed writer leaves only a `.tmp-` file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX + path.name + ".", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON (indent 2, trailing newline) atomically (`write_atomic`)."""
    write_atomic(path, lambda handle: handle.write((json.dumps(data, indent=2, sort_keys=False) + "\n").encode()))


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def write_npz_atomic(path: Path, arrays: dict[str, Any]) -> None:
    """`numpy.savez` to a temporary file beside `path`, fsync, then `os.replace` (atomic on POSIX)."""
    import numpy as np

    write_atomic(path, lambda handle: np.savez(handle, **arrays))


def create_json_once(path: Path, data: Any) -> bool:
    """Create `path` with JSON unless it exists (atomic and race-free between processes: temp file + hard link,
    which fails when another process created it first). True when this call created it."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = (json.dumps(data, indent=2, sort_keys=False) + "\n").encode()
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX + path.name + ".", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        except OSError:  # no hard links on this filesystem: best effort, still atomic
            if path.exists():
                return False
            os.replace(tmp, path)
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
