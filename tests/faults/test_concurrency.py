"""Concurrency (issue 29): two `run_all.sh` on one results folder (the second is refused at once with a message
naming the first; the lock of a killed run is released by the OS, so it never blocks a rerun), and processes filling
one cache at the same time (the speech cache, and the dequantised model: slow) leave no torn entry."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from artifact.core.fileio import TMP_PREFIX
from tests.support.faults import (
    ENV,
    PIPELINE_ENV,
    REPO,
    TRACEBACK,
    assert_one_line_error,
    assert_same_run,
    cache_problems,
    finished_ok,
    pipeline_command,
    run,
)


def test_a_second_run_on_one_results_folder_is_refused_and_a_killed_runs_lock_is_not(tmp_path):
    out = tmp_path / "results"
    first = subprocess.Popen(pipeline_command(out), cwd=REPO, env=PIPELINE_ENV, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        lock = out / ".run.lock"
        deadline = time.monotonic() + 600
        while not (lock.is_file() and "pid" in lock.read_text()) and time.monotonic() < deadline:
            assert first.poll() is None, "the first run ended before it took the lock"
            time.sleep(0.05)
        t0 = time.monotonic()
        second = run(pipeline_command(out), env=PIPELINE_ENV)
        refused_in = time.monotonic() - t0
        assert_one_line_error(second, f"{out} is in use by another run (pid {first.pid}", "wait for it to finish",
                              "another --out")
        assert first.poll() is None  # the first run goes on
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    from artifact.experiments.pipeline import results_lock

    assert lock.is_file() and f"pid {first.pid}" in lock.read_text()  # a stale lock file is left behind ...
    with results_lock(out):  # ... and does not block: the OS released the dead process's flock
        assert f"pid {os.getpid()}" in lock.read_text()
    print(f"second run refused in {refused_in:.1f} s")


FILL = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from artifact.speech.front_end import FrontEndConfig, SpeechFrontEnd
    front = SpeechFrontEnd(FrontEndConfig(), cache_dir=Path(sys.argv[1]))
    prompts = [("The Eiffel Tower is located in the city of", "Eiffel Tower"),
               ("Vinson Massif is located in the continent of", "Vinson Massif"),
               ("The mother tongue of Danielle Darrieux is", "Danielle Darrieux")]
    out = [{"tokens": list(map(int, f.units.tokens)), "subject": list(f.subject_tokens), "audio": float(f.audio.sum())}
           for f in (front.process(text, subject) for text, subject in prompts)]
    print(json.dumps({"facts": out, "hits": front.cache.hits, "misses": front.cache.misses}))
""")


def test_two_processes_filling_one_speech_cache_leave_no_torn_entry(tmp_path):
    cache = tmp_path / "speech"
    command = [sys.executable, "-c", FILL, str(cache)]
    both = [subprocess.Popen(command, cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    outputs = [p.communicate(timeout=900) for p in both]
    for process, (stdout, stderr) in zip(both, outputs):
        assert process.returncode == 0, stderr
    first, second = (json.loads(stdout.splitlines()[-1]) for stdout, _ in outputs)
    assert first["facts"] == second["facts"] and first["misses"] > 0
    entries = [p for p in cache.rglob("*") if p.is_file() and p.suffix in (".json", ".npy")]
    assert entries and not list(cache.rglob(TMP_PREFIX + "*"))
    import hashlib

    for entry in entries:  # every entry whole, with the digest it was written with
        digest = entry.with_name(entry.name + ".sha256").read_text().split()[0]
        assert hashlib.sha256(entry.read_bytes()).hexdigest() == digest, entry
    third = run(command)
    assert third.returncode == 0, third.stderr
    reread = json.loads(third.stdout.splitlines()[-1])
    assert reread["facts"] == first["facts"] and reread["misses"] == 0 and reread["hits"] == len(entries)


DEQUANTISE = "from artifact.models.loading import embedded_model_dir; print(embedded_model_dir())"


@pytest.mark.slow
def test_two_processes_dequantising_into_one_empty_model_cache(tmp_path):
    """Both dequantise SmolLM2 at once into an empty cache: one folder wins the atomic rename, the other process
    uses it; the entry is whole (its recorded digests check) and no temporary folder is left."""
    from artifact.models.loading import cached_folder_problem

    env = {**ENV, "ARTIFACT_CACHE_DIR": str(tmp_path / "cache")}
    both = [subprocess.Popen([sys.executable, "-c", DEQUANTISE], cwd=REPO, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=1800) for p in both]
    assert [p.returncode for p in both] == [0, 0], [e for _, e in outputs]
    folders = {stdout.strip() for stdout, _ in outputs}
    assert len(folders) == 1
    folder = folders.pop()
    assert cached_folder_problem(folder) is None
    assert not [p for p in (tmp_path / "cache" / "embedded").iterdir() if p.name.startswith(TMP_PREFIX)]


@pytest.mark.slow
def test_two_smoke_runs_sharing_one_empty_cache_at_once(tmp_path):
    """Two real `./run_all.sh` smoke runs (two results folders) started together on one empty cache: both
    dequantise the model and fill the speech cache at the same time. Both end with PASS, their arrays are equal bit
    for bit, and no cache entry is torn (every speech entry matches its sha256, the model folder its digests, no
    temporary file left)."""
    cache = tmp_path / "cache"
    env = {**PIPELINE_ENV, "ARTIFACT_CACHE_DIR": str(cache)}
    t0 = time.monotonic()
    both = [subprocess.Popen(pipeline_command(tmp_path / name), cwd=REPO, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True) for name in ("a", "b")]
    outputs = [p.communicate(timeout=7200)[0] for p in both]
    for process, output in zip(both, outputs):
        assert TRACEBACK not in output, output[-3000:]
        assert finished_ok(output, process.returncode), output[-3000:]
    compared = assert_same_run(tmp_path / "a", tmp_path / "b")
    assert not cache_problems(cache), cache_problems(cache)
    entries = len([p for p in (cache / "speech").rglob("*") if p.suffix in (".json", ".npy")])
    print(f"two runs at once: {time.monotonic() - t0:.0f} s, {compared} array files equal, {entries} speech-cache "
          "entries whole")
