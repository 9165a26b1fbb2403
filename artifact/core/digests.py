"""sha256 lists of a run's trace files, in `sha256sum` format: written by the aggregate step next to the aggregate
computed from them, checked by verify.py before it recomputes anything from the traces. Torch-free."""

from __future__ import annotations

from pathlib import Path

from artifact.core.fileio import sha256_file, write_atomic
from artifact.core.layout import TRACES_DIR


def trace_digests(run_dir: Path) -> dict[str, str]:
    """sha256 of every finished trace file of a run folder (`traces/<job>/*.npz`), keyed by its path relative to the
    run folder, in sorted order."""
    run_dir = Path(run_dir)
    return {path.relative_to(run_dir).as_posix(): sha256_file(path)
            for path in sorted((run_dir / TRACES_DIR).glob("*/*.npz"))}


def write_digest_list(path: Path, digests: dict[str, str]) -> None:
    """Write `digests` as `sha256sum` lines (checkable with `sha256sum -c` from the run folder)."""
    text = "".join(f"{digest}  {name}\n" for name, digest in digests.items())
    write_atomic(Path(path), lambda handle: handle.write(text.encode()))


def read_digest_list(path: Path) -> dict[str, str]:
    """Read a list written by `write_digest_list`; a malformed line raises ValueError naming it."""
    digests: dict[str, str] = {}
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        digest, sep, name = line.partition("  ")
        if not sep or len(digest) != 64 or not name:
            raise ValueError(f"{path}:{number}: not a sha256sum line: {line[:80]!r}")
        digests[name] = digest
    return digests
