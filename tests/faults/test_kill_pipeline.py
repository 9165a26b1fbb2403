"""Kill at every step (issue 29), on the real embedded smoke pipeline: `./run_all.sh` is sent SIGKILL at each step
boundary and in the middle of each step (found by watching the results folder), and at some restarts a finished file
is damaged as a crash or a disk would (a truncated S->T trace, as in the issue; a bit-flipped carry-over fact; a
truncated comparison.json). Every rerun of the same command goes on; the last one ends with PASS, and every array
equals an uninterrupted run's, bit for bit. Slow (about 40 min on 2 quiet cores):

    scripts/test.sh -m slow tests/faults

To go on with a stopped invocation: ARTIFACT_FAULTS_INTERRUPTED=<its tmp folder>/interrupted and
ARTIFACT_FAULTS_KILLS=<the kill points (indices into KILLS) it had not reached, e.g. 4,5,6,7,8,9,10,11>.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from artifact.core.fileio import npz_problem
from tests.support.faults import (
    PIPELINE_ENV,
    REPO,
    TRACEBACK,
    assert_same_run,
    finished_ok,
    flip_bit,
    pipeline_command,
    truncate,
)

pytestmark = pytest.mark.slow


def steps_done(out: Path) -> set[str]:
    try:
        return {k for k, v in json.loads((out / "steps.json").read_text()).items() if v.get("done")}
    except (OSError, ValueError):
        return set()


def count(out: Path, pattern: str) -> int:
    return len(list(out.glob(pattern)))


# (label, condition on the results folder that triggers the kill, damage done before the next start)
KILLS = [
    ("known: middle", lambda o: count(o, "runs/*/settings.json") >= 1, None),
    ("known -> t2t boundary", lambda o: "known" in steps_done(o), None),
    ("t2t: middle", lambda o: count(o, "runs/t2t-*/traces/*/*.npz") >= 4, None),
    ("t2t -> s2t boundary", lambda o: "t2t" in steps_done(o), None),
    ("s2t: middle", lambda o: count(o, "runs/s2t-*/traces/*/*.npz") >= 6, "truncate an S->T trace"),
    ("s2t -> aggregate boundary", lambda o: "s2t" in steps_done(o), None),
    ("compare", lambda o: "aggregate" in steps_done(o), "truncate a finished T->T trace"),
    ("carryover: middle", lambda o: count(o, "carryover/facts/*.npz") >= 3, "flip a bit of a carry-over fact"),
    ("transcription: middle", lambda o: count(o, "transcription/facts/*.npz") >= 3,
     "flip a bit of a transcription fact"),
    ("corruption: middle", lambda o: count(o, "corruption/facts/*/*.npz") >= 1, "truncate a corruption-choice fact"),
    ("figures", lambda o: "corruption" in steps_done(o) and count(o, "runs/*/figures/*.png") >= 1,
     "truncate comparison.json"),
    ("manifest / verify", lambda o: "figures" in steps_done(o), None),
]
# damage to a file of an unfinished step, found on resume by the file's own zip CRC-32s: (its step, the warning); once
# its step has finished (a quick step can end before the kill lands), the step's digests find it instead
FOUND_BY_CRC = {"truncate an S->T trace": ("s2t", "damaged result file"),
                "flip a bit of a transcription fact": ("transcription", "is damaged"),
                "truncate a corruption-choice fact": ("corruption", "is damaged")}
FOUND_BY_DIGEST = "changed or missing since their step finished"


def damage(out: Path, what: str) -> str:
    if what in ("truncate an S->T trace", "truncate a finished T->T trace"):
        victim = sorted(out.glob(f"runs/{'s2t' if 'S->T' in what else 't2t'}-*/traces/*/*.npz"))[0]
        truncate(victim)
    elif what == "flip a bit of a carry-over fact":
        victim = sorted(out.glob("carryover/facts/*.npz"))[0]
        flip_bit(victim)
    elif what == "flip a bit of a transcription fact":
        victim = sorted(out.glob("transcription/facts/*.npz"))[0]
        flip_bit(victim)
    elif what == "truncate a corruption-choice fact":
        victim = sorted(out.glob("corruption/facts/*/*.npz"))[0]
        truncate(victim)
    else:
        victim = out / "comparison" / "comparison.json"
        truncate(victim)
    return str(victim.relative_to(out))


def start(out: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen(pipeline_command(out), cwd=REPO, env=PIPELINE_ENV, stdout=open(log, "w"),
                            stderr=subprocess.STDOUT, start_new_session=True)  # its own group: verify.py too


def test_sigkill_at_every_step_then_rerun_equals_an_uninterrupted_run(request, tmp_path):
    # ARTIFACT_FAULTS_INTERRUPTED: go on with the results folder of an earlier, stopped invocation (with
    # ARTIFACT_FAULTS_KILLS naming the kill points it had not reached), so a run longer than a session can be resumed
    interrupted = Path(os.environ.get("ARTIFACT_FAULTS_INTERRUPTED") or tmp_path / "interrupted")
    t0 = time.monotonic()
    record = []
    chosen = os.environ.get("ARTIFACT_FAULTS_KILLS")  # e.g. "2,4,6": a subset of KILLS by index (default: all)
    kills = [KILLS[int(i)] for i in chosen.split(",")] if chosen else KILLS
    for n, (label, ready, harm) in enumerate(kills):
        log = tmp_path / f"attempt-{n}.log"
        process = start(interrupted, log)
        deadline = time.monotonic() + 3600
        while not ready(interrupted) and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if process.poll() == 0 and finished_ok(log.read_text(), 0):  # the last steps can be quicker than a poll
            record.append((label, "missed: the run had finished", False, []))
            break
        assert process.poll() is None, f"{label}: the run ended before the kill:\n{log.read_text()[-3000:]}"
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        text = log.read_text()
        assert TRACEBACK not in text, text[-3000:]
        done = sorted(steps_done(interrupted))  # where the kill landed (a quick step may have finished already)
        damaged = damage(interrupted, harm) if harm else ""
        # a bit flip can land in bytes no number depends on (zip timestamps): then nothing is to be found
        found = bool(damaged) and (not damaged.endswith(".npz") or npz_problem(interrupted / damaged) is not None)
        record.append((label, damaged, found, done))
        print(f"killed at {label} after {time.monotonic() - t0:.0f} s (steps done: {', '.join(done) or 'none'})"
              + (f"; damaged {damaged}" if damaged else ""), flush=True)
    final = subprocess.run(pipeline_command(interrupted), cwd=REPO, env=PIPELINE_ENV, capture_output=True,
                           text=True, timeout=7200)
    assert TRACEBACK not in final.stdout + final.stderr
    assert finished_ok(final.stdout, final.returncode), final.stdout[-3000:] + final.stderr[-3000:]
    compared = assert_same_run(request.getfixturevalue("smoke_reference"), interrupted)  # (may run alongside)
    assert not list(interrupted.rglob(".tmp-*"))
    logs = "".join((tmp_path / f"attempt-{n}.log").read_text() for n in range(len(record))) + final.stdout
    harms = {harm for _, _, harm in kills[:len(record)]}
    lines = (logs + final.stderr).splitlines()
    for (_, victim, found, done), (_, _, harm) in zip(record, kills):  # found on resume and computed again
        if harm in FOUND_BY_CRC and found:
            step, warning = FOUND_BY_CRC[harm]
            warning = FOUND_BY_DIGEST if step in done else warning
            shown = "/".join(Path(victim).parts[-2:])  # e.g. hidden/109.npz, facts/24.npz, s2t/24.npz
            assert any(warning in line and shown in line for line in lines), (harm, victim, warning)
    # the finished T->T trace and comparison.json: found by their step's digests, the steps redone from there
    assert logs.count(FOUND_BY_DIGEST) >= len(harms & {"truncate a finished T->T trace", "truncate comparison.json"})
    print(f"{len(kills)} kills, {sum(bool(d) for _, d, *_ in record)} damaged files ({sum(r[2] for r in record)} "
          f"detectably); {compared} array files equal "
          f"bit for bit; total {time.monotonic() - t0:.0f} s")
