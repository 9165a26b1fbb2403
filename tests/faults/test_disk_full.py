"""Disk full (issue 29), on a real size-limited filesystem (tmpfs; root only). A full disk anywhere is one message
naming the folder, its free space and roughly what a run needs, exit code 2, no traceback; nothing half-written is
left for a rerun to trust; once space is freed the same command finishes, bitwise equal to a run that never hit the
wall. Fast cases: the atomic writer and the `run` command on a tiny model. Slow case: the real smoke pipeline with its
results on a tmpfs grown step by step, so that it fails at several points (scripts/test.sh -m slow tests/faults)."""

from __future__ import annotations

import os
import re
import shutil

import numpy as np
import pytest

from artifact.core.fileio import TMP_PREFIX, write_json_atomic, write_npz_atomic
from tests.support.faults import (
    PIPELINE_ENV,
    TRACEBACK,
    assert_one_line_error,
    assert_same_arrays,
    assert_same_run,
    finished_ok,
    pipeline_command,
    run,
    run_command,
    tiny_model,
)


def test_the_atomic_writer_on_a_full_disk_leaves_nothing_and_names_the_folder(tmpfs):
    from artifact.core.fileio import DiskFullError

    disk = tmpfs("64k")
    write_json_atomic(disk.path / "small.json", {"fits": True})
    with pytest.raises(DiskFullError) as raised:
        write_npz_atomic(disk.path / "sub" / "big.npz", {"x": np.zeros(100_000)})
    message = str(raised.value)
    assert f"no space left on the device of {disk.path / 'sub'}" in message and "MB free" in message
    assert "rerun the same command" in message
    assert not (disk.path / "sub" / "big.npz").exists()
    assert not list(disk.path.rglob(TMP_PREFIX + "*"))  # the temporary file is gone too
    assert (disk.path / "small.json").read_text().strip().endswith("}")  # what was there is untouched


def test_the_run_command_on_a_full_disk_then_freed_finishes_identically(tmpfs, tmp_path):
    model, facts = tiny_model(tmp_path / "tiny")
    clean = tmp_path / "clean"
    assert run(run_command(model, facts, clean)).returncode == 0
    disk = tmpfs("40k")
    out = disk.path / "results"
    full = run(run_command(model, facts, out))
    line = assert_one_line_error(full, "no space left on the device of", str(out), "MB free",
                                 "rerun the same command")
    assert not list(out.rglob(TMP_PREFIX + "*"))
    disk.resize("20m")
    again = run(run_command(model, facts, out))
    assert again.returncode == 0, again.stderr
    names = sorted(p.relative_to(clean).as_posix() for p in clean.glob("*/traces/*/*.npz"))
    assert names == sorted(p.relative_to(out).as_posix() for p in out.glob("*/traces/*/*.npz")) and names
    for name in names:
        assert_same_arrays(clean / name, out / name)
    print(line)


@pytest.mark.slow
def test_the_smoke_pipeline_on_a_disk_that_fills_at_several_points(smoke_reference, tmpfs):
    """The smoke run's results on a tmpfs that is full at the start, then grown after each failure: every failure
    is one message (folder, free space, what a smoke run needs), exit 2; the last run ends with PASS and the arrays
    of the uninterrupted run."""
    total = sum(p.stat().st_size for p in smoke_reference.rglob("*") if p.is_file())
    disk = tmpfs("16k")
    out = disk.path / "results"
    outcomes = []
    chosen = os.environ.get("ARTIFACT_FAULTS_DISK")  # e.g. "0,0.3,0.7": disk sizes as shares of the run's size
    shares = [float(x) for x in chosen.split(",")] if chosen else [0.0, 0.2, 0.5, 0.8, 0.95]
    for fraction in [*shares, None]:
        size = "1g" if fraction is None else f"{max(16, int(total * fraction / 1024))}k"
        disk.resize(size)
        done = run(pipeline_command(out), env=PIPELINE_ENV, timeout=7200)
        assert TRACEBACK not in done.stdout + done.stderr, done.stderr[-3000:]
        steps = re.findall(r"^=== (\d/\d [^=]*?)(?: =|: done)", done.stdout, flags=re.M)
        where = steps[-1].strip() if steps else "before the steps"
        if done.returncode == 2:
            line = assert_one_line_error(done, "no space left on the device of", "a smoke run of the embedded "
                                         "models needs about", "MB in", "rerun the same command")
            outcomes.append((size, where, line))
            assert not list(out.rglob(TMP_PREFIX + "*")), "a temporary file was left"
            continue
        outcomes.append((size, where, f"exit {done.returncode}"))
        if fraction is None or finished_ok(done.stdout, done.returncode) and "report.html: /" in done.stdout:
            break
    for outcome in outcomes:
        print(" | ".join(outcome))
    assert finished_ok(done.stdout, done.returncode), done.stdout[-3000:]
    compared = assert_same_run(smoke_reference, out)
    failures = [o for o in outcomes if o[2].startswith("error:")]
    print(f"{len(failures)} disk-full failures at {len({w for _, w, _ in failures})} points; "
          f"{compared} array files equal the uninterrupted run's")
    assert len({where for _, where, _ in failures}) >= min(3, len(shares)), outcomes  # at several steps
    shutil.rmtree(out, ignore_errors=True)
