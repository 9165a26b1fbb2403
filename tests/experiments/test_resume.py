"""The `run` command end to end in a subprocess: SIGKILL half way, rerun, and the result equals an uninterrupted run
bit for bit, without redoing finished results. A tiny seeded Llama with the real SmolLM2 tokenizer keeps it fast;
its facts are built from the tiny model's own greedy predictions, so the Known filter keeps some and drops others."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from artifact.analysis.aggregate import aggregate_run

REPO = Path(__file__).resolve().parents[2]
SUBJECTS = ["Paris", "Berlin", "Madrid", "Rome", "Vienna", "Oslo", "Lisbon", "Dublin", "Prague", "Warsaw", "Athens",
            "Cairo", "Tokyo", "Seoul", "Lima", "Quito", "Nairobi", "Accra", "Dakar", "Havana"]
TEMPLATES = [("{} is located in the country of", "P17"), ("The mayor of {} speaks the language", "P37"),
             ("{} is a city in", "P131")]
LIMIT, JOBS = 6, 4  # facts traced, jobs per fact (hidden, mlp, attn, severed)


@pytest.fixture(scope="module")
def tiny_model_and_facts(tmp_path_factory):
    from tests.support.tiny_runs import tiny_model_with_known_facts

    prompts = [(subject, *TEMPLATES[i % len(TEMPLATES)]) for i, subject in enumerate(SUBJECTS)]
    folder, facts, known = tiny_model_with_known_facts(tmp_path_factory.mktemp("tinylm") / "tiny-smollm-tokenizer",
                                                       prompts, seed=0, layers=4, max_known=2 * LIMIT)
    assert known >= LIMIT, "the tiny model must know enough facts for this test"
    return folder, facts


def run_command(folder: Path, facts: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "artifact", "run", "--model", str(folder), "--facts", str(facts), "--kinds",
            "hidden,mlp,attn", "--severed", "--samples", "3", "--window", "3", "--batch-size", "16", "--limit",
            str(LIMIT), "--out", str(out), "--no-progress", *extra]


ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def results(out: Path) -> list[Path]:
    return sorted(out.glob("*/traces/*/*.npz"))


def test_sigkill_half_way_then_resume_equals_an_uninterrupted_run(tiny_model_and_facts, tmp_path):
    folder, facts = tiny_model_and_facts
    interrupted, clean = tmp_path / "interrupted", tmp_path / "clean"

    process = subprocess.Popen(run_command(folder, facts, interrupted), cwd=REPO, env=ENV, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while len(results(interrupted)) < 2 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    output = process.communicate()[0].decode()
    assert process.returncode == -signal.SIGKILL, f"the run ended before it could be killed:\n{output}"
    finished = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in results(interrupted)}
    assert 2 <= len(finished) < LIMIT * JOBS, output

    resumed = subprocess.run(run_command(folder, facts, interrupted), cwd=REPO, env=ENV, capture_output=True,
                             text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{LIMIT * JOBS - len(finished)} results computed, {len(finished)} already present" in resumed.stdout
    after = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in results(interrupted)}
    assert len(after) == LIMIT * JOBS
    assert {p: after[p] for p in finished} == finished  # finished results untouched (same inode, same mtime)
    assert not list(interrupted.rglob(".tmp-*"))

    uninterrupted = subprocess.run(run_command(folder, facts, clean), cwd=REPO, env=ENV, capture_output=True,
                                   text=True, timeout=600)
    assert uninterrupted.returncode == 0, uninterrupted.stderr
    (run_a,), (run_b,) = list(interrupted.glob("t2t-*")), list(clean.glob("t2t-*"))
    assert run_a.name == run_b.name  # same settings, same key
    for path_a in results(interrupted):
        path_b = run_b / path_a.relative_to(run_a)
        with np.load(path_a) as a, np.load(path_b) as b:
            assert a.files == b.files
            for name in a.files:
                np.testing.assert_array_equal(a[name], b[name], err_msg=f"{path_a.name}:{name}")
    aggregate_run(run_a, n_resamples=500)
    aggregate_run(run_b, n_resamples=500)
    for name in ("aie.csv", "severed.csv", "aie.json"):
        assert (run_a / "aggregate" / name).read_bytes() == (run_b / "aggregate" / name).read_bytes(), name
    known = json.loads((run_a / "known.json").read_text())
    assert known["n_facts"] == len(SUBJECTS) and 0 < known["n_known"] < len(SUBJECTS) and known["rule"]
    settings = json.loads((run_a / "settings.json").read_text())
    assert settings["noise_spec"] == "3sigma" and settings["noise"] > 0

    # A changed setting goes to another folder; the old results stay as they were.
    cmd = run_command(folder, facts, interrupted) + ["--samples", "2", "--limit", "1", "--kinds", "hidden"]
    cmd.remove("--severed")
    changed = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)
    assert changed.returncode == 0, changed.stderr
    folders = sorted(interrupted.glob("t2t-*"))
    assert len(folders) == 2 and {json.loads((f / "settings.json").read_text())["samples"] for f in folders} == {2, 3}
    assert len(list((set(folders) - {run_a}).pop().glob("traces/*/*.npz"))) == 1
    assert {p: p.stat().st_mtime_ns for p in results(interrupted) if run_a in p.parents} == {
        p: after[p][1] for p in after}
