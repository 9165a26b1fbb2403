"""Disk full (issue 29), on a real size-limited filesystem (tmpfs; root only). A full disk anywhere is one message
naming the folder, its free space and roughly what a run needs, exit code 2, no traceback; nothing half-written is
left for a rerun to trust; once space is freed the same command finishes, bitwise equal to a run that never hit the
wall. Fast cases: the atomic writer and the `run` command on a tiny model. Slow case: the real smoke pipeline with its
results on a tmpfs grown step by step, so that it fails at several points (scripts/test.sh -m slow tests/faults)."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time

import numpy as np
import pytest

from artifact.core.fileio import TMP_PREFIX, write_json_atomic, write_npz_atomic
from tests.support.faults import (
    PIPELINE_ENV,
    REPO,
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
from tests.verification.test_verify import world  # noqa: F401 - synthetic results and their profile


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


def test_verify_py_on_a_full_disk_keeps_its_verdict_and_says_why_the_report_is_missing(world, tmpfs):
    """verify.py's report on a full disk: the verdict stands (exit 0 for PASS), and one line says the report was
    not written, where, and what to do; no traceback (its writer's DiskFullError used to escape: exit 1 and a
    traceback, which the pipeline read as FAIL)."""
    disk = tmpfs("8k")
    done = run([sys.executable, str(REPO / "verify.py"), "--results", str(world["fresh"]), "--expected",
                str(world["profile"]), "--report", str(disk.path / "report"), "--no-recompute"])  # no traces
    assert TRACEBACK not in done.stderr, done.stderr
    assert done.returncode == 0 and "verify: PASS" in done.stdout, done.stdout[-2000:] + done.stderr
    lines = [x for x in done.stderr.splitlines() if "could not write the report" in x]
    assert len(lines) == 1 and f"no space left on the device of {disk.path}" in lines[0], done.stderr
    assert "rerun the same command" in lines[0]
    assert not [p for p in disk.path.rglob("*") if p.is_file()]  # nothing half-written


def test_report_html_on_a_full_disk_is_one_message_and_leaves_nothing(tmpfs, tmp_path):
    """report.html (about 2 MB for a smoke run) on a full disk: DiskFullError naming the folder, no temporary file
    left (it was a raw OSError, which the pipeline printed as `[Errno 28] No space left on device`)."""
    from artifact.core.fileio import DiskFullError
    from artifact.report.html import write_report_html

    disk = tmpfs("4k")
    (disk.path / "filler").write_bytes(b"x" * 4096)
    with pytest.raises(DiskFullError) as raised:
        write_report_html(disk.path)
    assert f"no space left on the device of {disk.path}" in str(raised.value)
    assert sorted(p.name for p in disk.path.iterdir()) == ["filler"]


def blocks(path) -> int:
    """Bytes a file takes on a disk (whole blocks, as a tmpfs counts them)."""
    return path.stat().st_blocks * 512


def where_it_stopped(stdout: str) -> str:
    """The title of the last banner a pipeline run printed (`1/8 known filters: ...`, `verdict: ...`, `summary`)."""
    banners = [line[4:].rstrip("= ") for line in stdout.splitlines() if line.startswith("=== ")]
    return banners[-1].split(": done in an earlier run")[0] if banners else "before the steps"


def disk_plan(reference) -> list[tuple[str, int]]:
    """(point, tmpfs size in bytes) for a full disk in the middle of each part of the smoke run that writes data:
    the files a finished run holds before that part, plus half of the part's own (from the reference run's
    steps.json, which lists each step's files); then verify.py's report and report.html. A part that writes less
    than 64 KiB cannot be split reliably and is left out. A file is counted once, in the first step that lists it:
    a step also lists files rewritten in it (summary.md) and those its predecessor wrote in its last second (the
    pipeline's clock slack), and counting them again made the later sizes megabytes too large."""
    from artifact.experiments.pipeline import STEPS

    steps = json.loads((reference / "steps.json").read_text())
    titles = {step.name: f"{n}/{len(STEPS)} {step.title}" for n, step in enumerate(STEPS, 1)}
    used = sum(blocks(reference / name) for name in ("pipeline.json", "steps.json", ".run.lock")
               if (reference / name).exists())
    plan = []
    owner: dict[str, str] = {}
    for name in titles:
        for rel in steps.get(name, {}).get("files", {}):
            owner.setdefault(rel, name)
    parts = [(titles[name], sum(blocks(reference / f) for f, first in owner.items() if first == name))
             for name in titles]
    parts.append(("verdict", sum(blocks(p) for p in (reference / "verify").rglob("*") if p.is_file())))
    parts.append(("summary", blocks(reference / "report.html")))
    for title, size in parts:
        if size >= 64 * 1024:
            plan.append((title, used + size // 2))
        used += size
    return plan


def test_the_disk_plan_counts_a_file_once_at_its_first_step(tmp_path):
    """A file several steps list (rewritten later, or claimed by the next step within the pipeline's clock slack) is
    counted once, in the first step that lists it: the plan's sizes are what the disk holds at each point (it was
    counted in every step that listed it, 2.3 MB too much by the end of a real smoke run, so later points were
    sized past the step they were meant for)."""
    from artifact.experiments.pipeline import STEPS

    names = [step.name for step in STEPS]
    files = {"a.npz": 200_000, "b.npz": 300_000, "shared.json": 400_000, "c.npz": 100_000}
    for rel, size in files.items():
        (tmp_path / rel).write_bytes(b"x" * size)
    steps = {name: {"done": True, "files": {}} for name in names}
    steps[names[0]]["files"] = {"a.npz": "-", "shared.json": "-"}
    steps[names[1]]["files"] = {"shared.json": "-", "b.npz": "-"}  # shared.json: the first step's
    steps[names[2]]["files"] = {"c.npz": "-"}
    (tmp_path / "steps.json").write_text(json.dumps(steps))
    (tmp_path / "report.html").write_bytes(b"")
    used = blocks(tmp_path / "steps.json")
    first = blocks(tmp_path / "a.npz") + blocks(tmp_path / "shared.json")
    second, third = blocks(tmp_path / "b.npz"), blocks(tmp_path / "c.npz")
    assert disk_plan(tmp_path)[:3] == [
        (f"1/{len(names)} {STEPS[0].title}", used + first // 2),
        (f"2/{len(names)} {STEPS[1].title}", used + first + second // 2),
        (f"3/{len(names)} {STEPS[2].title}", used + first + second + third // 2)]


@pytest.mark.slow
def test_the_smoke_pipeline_on_a_disk_that_fills_at_several_points(smoke_reference, tmpfs):
    """The smoke run's results on a tmpfs sized to be full in the middle of each step that writes data (then of
    verify.py's report and report.html), grown after each failure: every failure is one message (folder, free
    space, what a smoke run needs), exit 2, and stops the run where the plan put it; the last run ends with PASS and
    every array equals the uninterrupted run's, bit for bit. Where verify.py's report or report.html cannot be
    written the verdict stands (exit 0) and one line says what was not written and why."""
    plan = disk_plan(smoke_reference)
    chosen = os.environ.get("ARTIFACT_FAULTS_DISK")  # e.g. "0,2,4": a subset of the plan by index (default: all)
    if chosen:
        plan = [plan[int(i)] for i in chosen.split(",")]
    disk = tmpfs("16k")
    out = disk.path / "results"
    outcomes = []
    for point, size in [*plan, ("the end", 1 << 30)]:
        disk.resize(f"{-(-size // 4096) * 4}k")
        t0 = time.monotonic()
        done = run(pipeline_command(out), env=PIPELINE_ENV, timeout=7200)
        seconds = time.monotonic() - t0
        assert TRACEBACK not in done.stdout + done.stderr, done.stdout[-3000:] + done.stderr[-3000:]
        if point == "the end":
            outcomes.append((point, size, where_it_stopped(done.stdout), done.returncode, seconds,
                             done.stdout.splitlines()[-1]))
            break
        report_line = next((x for x in done.stdout.splitlines() if x.startswith("report.html: ")), "")
        verify_lines = [x for x in done.stderr.splitlines() if "could not write the report" in x]
        if done.returncode == 2:  # a step stopped: one line (folder, free space, what a smoke run needs)
            stopped = where_it_stopped(done.stdout)
            line = assert_one_line_error(done, "no space left on the device of", "MB free", "rerun the same command",
                                         "a smoke run of the embedded models needs about")
        elif verify_lines:  # verify.py's report not written: the verdict stands, one line says why and the fix
            stopped, line = "verdict", verify_lines[0]
            assert finished_ok(done.stdout, done.returncode) and len(verify_lines) == 1, done.stderr[-3000:]
            assert "no space left on the device of" in line and "rerun the same command" in line, line
        else:  # report.html not written: the verdict stands, one line says why and how to write it again
            stopped, line = "summary", report_line
            assert finished_ok(done.stdout, done.returncode), done.stdout[-3000:] + done.stderr[-3000:]
            assert "no space left on the device of" in line and "python -m artifact report" in line, line
        outcomes.append((point, size, stopped, done.returncode, seconds, line))
        print(" | ".join(str(x) for x in outcomes[-1]), flush=True)  # as it happens (-s): a stopped run says how far
        assert not list(out.rglob(TMP_PREFIX + "*")), "a temporary file was left"
    print(" | ".join(str(x) for x in outcomes[-1]), flush=True)
    assert finished_ok(done.stdout, done.returncode), done.stdout[-3000:]
    compared = assert_same_run(smoke_reference, out)
    assert not list(out.rglob(TMP_PREFIX + "*"))
    print(f"{len(plan)} disk-full points, {compared} array files equal the uninterrupted run's")
    # each failure stopped the run in the part the plan sized the disk for (a failure elsewhere would mean a step
    # writes more, or less, than the reference says, or a rerun lost what it had)
    assert [stopped for _, _, stopped, *_ in outcomes[:-1]] == [point for point, _ in plan], outcomes
    shutil.rmtree(out, ignore_errors=True)
