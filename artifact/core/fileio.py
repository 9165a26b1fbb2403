"""Torch-free file helpers shared by the runner, the model loader and the run manifest: atomic writes, sha256, and
the checks a resumed run makes before it trusts a file it finds.

Kept free of heavy imports so that a shell script recording a step (`python -m artifact manifest --step`) stays fast.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import struct
import tempfile
import zipfile
from pathlib import Path
from typing import Any, BinaryIO, Callable

TMP_PREFIX = ".tmp-"  # temporary files of atomic writes: `.tmp-<name>.<random>` beside the target
FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)  # "no space left on device", "disk quota exceeded"


class DiskFullError(RuntimeError):
    """A write failed because its filesystem is full (or over quota). Names the folder, the free space there and,
    when the caller knows it (`need`), roughly how much a run needs; nothing half-written is left behind."""

    def __init__(self, path: Path, need: str = "") -> None:
        self.path, self.need = Path(path), need
        super().__init__(self._message())

    @property
    def folder(self) -> Path:
        """The nearest existing folder of the failed write."""
        folder = self.path if self.path.is_dir() else self.path.parent
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        return folder

    def with_need(self, need: str) -> "DiskFullError":
        """The same error with `need` (e.g. 'a smoke run needs about 30 MB there') in its message."""
        return DiskFullError(self.path, need)

    def _message(self) -> str:
        try:
            free = f"{shutil.disk_usage(self.folder).free / 1e6:.1f} MB free"
        except OSError:
            free = "free space unknown"
        need = f"; {self.need}" if self.need else ""
        return (f"no space left on the device of {self.folder} (writing {self.path.name}; {free}{need}). Free some "
                "space there or choose a folder on a larger disk (--out), then rerun the same command: finished "
                "work is kept and nothing half-written is trusted.")


class DamagedFileError(ValueError):
    """A file a run relies on is truncated, not in its format, or differs from its recorded sha256; the message
    names it and says to delete it (a rerun of the same command writes it again)."""

    def __init__(self, path: Path, problem: str, fix: str = "") -> None:
        self.path = Path(path)
        super().__init__(f"{self.path} is damaged ({problem}). "
                         + (fix or "Delete it and rerun the same command: it is written again."))


def is_disk_full(error: BaseException) -> bool:
    """True for an OSError meaning the filesystem is full or over quota."""
    return isinstance(error, OSError) and error.errno in FULL_ERRNOS


def _fsync_dir(folder: Path) -> None:
    """fsync a folder so that a rename in it survives a power cut (best effort: not every filesystem allows it)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def current_umask() -> int:
    """The process's umask, read without changing it where Linux shows it (/proc/self/status), else by setting and
    restoring it."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _temporary_beside(path: Path) -> tuple[int, str]:
    """A new temporary file (descriptor, name) in `path`'s folder, created if missing, with the mode a plain `open`
    would give (0666 minus the umask; mkstemp's 0600 would hide results and caches from a reader with another uid);
    a full disk raises DiskFullError naming `path`."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX + path.name + ".", dir=path.parent)
    except OSError as error:
        if is_disk_full(error):
            raise DiskFullError(path) from None
        raise
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    return fd, tmp


def temporary_folder(parent: Path, prefix: str = TMP_PREFIX) -> Path:
    """A new temporary folder in `parent` (made atomic by renaming it once filled) with the mode a plain `mkdir`
    would give (0777 minus the umask), not mkdtemp's 0700."""
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    os.chmod(folder, 0o777 & ~current_umask())
    return folder


def write_atomic(path: Path, write: Callable[[BinaryIO], Any]) -> None:
    """Write to a temporary file beside `path` with `write(handle)`, fsync, then `os.replace` (atomic on POSIX) and
    fsync the folder: readers never see a half-written file, and a killed writer leaves only a `.tmp-` file (removed
    here on any error). A full disk raises DiskFullError naming the folder."""
    path = Path(path)
    fd, tmp = _temporary_beside(path)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if is_disk_full(error):
            raise DiskFullError(path) from None
        raise
    _fsync_dir(path.parent)


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
    import numpy as np  # lazy: numpy

    write_atomic(path, lambda handle: np.savez(handle, **arrays))


def create_json_once(path: Path, data: Any) -> bool:
    """Create `path` with JSON unless it exists (atomic and race-free between processes: temp file + hard link,
    which fails when another process created it first). True when this call created it."""
    if path.exists():
        return False
    payload = (json.dumps(data, indent=2, sort_keys=False) + "\n").encode()
    fd, tmp = _temporary_beside(path)
    try:
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(payload)
                handle.flush()
                os.fsync(handle.fileno())
        except OSError as error:
            if is_disk_full(error):
                raise DiskFullError(path) from None
            raise
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


def npz_problem(path: Path) -> str | None:
    """What is wrong with a finished `.npz` file, or None when it is intact: it must be a complete zip whose every
    member is an `.npy` array with a matching CRC-32 (the checksum zip stores per member, checked by reading every
    byte). Catches a truncated file, a bit flip, and a file that is not an npz at all."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            if not names or any(not name.endswith(".npy") for name in names):
                return "not a numpy .npz archive"
            listed = _zip_entries(path)
            if listed != len(names):  # a damaged central directory can hide members
                return f"its zip directory lists {listed} members but {len(names)} can be read"
            bad = archive.testzip()
            if bad is not None:
                return f"member {bad} fails its CRC-32 check"
    except FileNotFoundError:
        return "missing"
    except Exception as error:  # noqa: BLE001 - zipfile raises many kinds on damaged headers (flags, methods...)
        return f"not a complete zip archive: {type(error).__name__}: {error}"
    return None


def _zip_entries(path: Path) -> int:
    """The member count in a zip file's end-of-central-directory record (-1 when there is none)."""
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - (1 << 16) - 22))
        tail = handle.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        return -1
    return struct.unpack("<H", tail[at + 10: at + 12])[0]  # total number of entries in the central directory


def read_json(path: Path, fix: str = "") -> Any:
    """The JSON value of `path`; DamagedFileError naming the file (and `fix`, default: delete it and rerun) when it
    is truncated, not UTF-8 or not JSON."""
    try:
        return json.loads(Path(path).read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DamagedFileError(path, f"not valid JSON: {error}", fix) from None
