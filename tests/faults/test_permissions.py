"""Files a run writes get the permissions a plain `open()` would give them (0666 minus the umask), not the 0600 of
`tempfile.mkstemp` that the atomic writes start from (issue 29): a container writing results or caches as one uid and
a reviewer reading them as another must not be locked out of pipeline.json, steps.json, traces or the model cache."""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from artifact.core.fileio import (
    create_json_once,
    temporary_folder,
    write_atomic,
    write_json_atomic,
    write_npz_atomic,
)
from tests.support.faults import run, run_command, tiny_model


@contextlib.contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_atomic_writes_get_the_mode_of_a_plain_open(tmp_path, mask):
    with umask(mask):
        plain = tmp_path / "plain"
        plain.write_text("x")
        folder = tmp_path / "plain-folder"
        folder.mkdir()
        write_json_atomic(tmp_path / "a.json", {"a": 1})
        write_npz_atomic(tmp_path / "a.npz", {"x": np.zeros(3)})
        write_atomic(tmp_path / "a.bin", lambda handle: handle.write(b"x"))
        assert create_json_once(tmp_path / "once.json", {"b": 2})
        made = temporary_folder(tmp_path)
    assert mode(plain) == 0o666 & ~mask
    for name in ("a.json", "a.npz", "a.bin", "once.json"):
        assert mode(tmp_path / name) == mode(plain), (name, oct(mode(tmp_path / name)), oct(mask))
    assert mode(made) == mode(folder) == 0o777 & ~mask  # a model-cache folder is renamed from it


def test_a_runs_results_are_readable_by_group_and_others_under_umask_022(tmp_path):
    """The `run` command on a tiny model under the usual umask 022: every file it writes is 0644, every folder 0755
    (mkstemp's 0600 would lock a reviewer with another uid out)."""
    model, facts = tiny_model(tmp_path / "tiny")
    out = tmp_path / "results"
    with umask(0o022):  # inherited by the child process
        done = run(run_command(model, facts, out))
    assert done.returncode == 0, done.stderr
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) >= 5
    wrong = {p.relative_to(out).as_posix(): oct(mode(p)) for p in files if mode(p) != 0o644}
    wrong |= {p.relative_to(out).as_posix(): oct(mode(p)) for p in out.rglob("*") if p.is_dir() and mode(p) != 0o755}
    assert not wrong, wrong


def test_the_downloaded_fact_file_in_the_cache_is_readable_by_others(known_1000_path, tmp_path, monkeypatch):
    """known_1000.json fetched into the cache (a file:// stand-in for the download) gets 0644 under umask 022."""
    from artifact import facts as facts_module

    monkeypatch.setenv("ARTIFACT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(facts_module, "KNOWN_1000_URL", known_1000_path.as_uri())
    with umask(0o022):
        assert len(facts_module.load_facts("known_1000")) == 1209
    cached = tmp_path / "cache" / "data" / "known_1000.json"
    assert mode(cached) == 0o644, oct(mode(cached))
    assert not [p for p in cached.parent.iterdir() if p.name.startswith(".tmp-")]
