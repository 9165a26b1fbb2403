"""Helpers of the fault-injection suite (tests/faults): small real runs of the `run` command on a tiny seeded Llama
with SmolLM2's tokenizer, damaging files the way a crash or a disk would, and the checks every fault shares (one
message, no traceback)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(REPO),
       "OMP_WAIT_POLICY": "PASSIVE"}
ENV.pop("ARTIFACT_DEBUG", None)
TRACEBACK = "Traceback (most recent call last)"
SUBJECTS = ["Paris", "Berlin", "Madrid", "Rome", "Vienna", "Oslo", "Lisbon", "Dublin", "Prague", "Warsaw"]
TEMPLATES = [("{} is located in the country of", "P17"), ("The mayor of {} speaks the language", "P37"),
             ("{} is a city in", "P131")]


def tiny_model(folder: Path, max_known: int = 4) -> tuple[Path, Path]:
    """A tiny seeded Llama saved in `folder` and a fact file beside it that it partly knows."""
    from tests.support.tiny_runs import tiny_model_with_known_facts

    prompts = [(subject, *TEMPLATES[i % len(TEMPLATES)]) for i, subject in enumerate(SUBJECTS)]
    model, facts, known = tiny_model_with_known_facts(folder, prompts, seed=0, layers=3, max_known=max_known)
    assert known >= 2, "the tiny model must know some facts"
    return model, facts


def run_command(model: Path, facts: Path, out: Path, *extra: str, limit: int = 2) -> list[str]:
    """`python -m artifact run` on the tiny model: hidden and mlp, 2 samples, `limit` facts."""
    return [sys.executable, "-m", "artifact", "run", "--model", str(model), "--facts", str(facts), "--kinds",
            "hidden,mlp", "--samples", "2", "--window", "3", "--batch-size", "16", "--limit", str(limit), "--out",
            str(out), "--no-progress", *extra]


def artifact(*args: str, env: dict | None = None, timeout: float = 600, cwd: Path = REPO
             ) -> subprocess.CompletedProcess:
    """`python -m artifact ARGS` in a subprocess (text output)."""
    return subprocess.run([sys.executable, "-m", "artifact", *args], cwd=cwd, env=env or ENV, capture_output=True,
                          text=True, timeout=timeout)


def run(command: list[str], env: dict | None = None, timeout: float = 600, cwd: Path = REPO
        ) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, env=env or ENV, capture_output=True, text=True, timeout=timeout)


def assert_one_line_error(result: subprocess.CompletedProcess, *needles: str, code: int = 2) -> str:
    """The process failed with `code`, no traceback, and one `error:` message holding every needle (its first line,
    plus the indented lines of a list of problems, such as a fact file's invalid records); returns it."""
    assert TRACEBACK not in result.stderr, result.stderr
    assert result.returncode == code, (result.returncode, result.stdout[-2000:], result.stderr)
    lines = result.stderr.splitlines()
    starts = [n for n, line in enumerate(lines) if line.startswith("error:")]
    assert len(starts) == 1, result.stderr
    message = [lines[starts[0]]]
    message += [line for line in lines[starts[0] + 1:] if line.startswith("  ")]
    text = "\n".join(message)
    for needle in needles:
        assert needle in text, (needle, text)
    return text


def truncate(path: Path, keep: float = 0.5) -> None:
    """Cut a file to `keep` of its length (a write cut short)."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def flip_bit(path: Path, where: float = 0.6) -> None:
    """Flip one bit at `where` of the file's length, keeping its size and name (a disk or memory error)."""
    data = bytearray(path.read_bytes())
    data[int(len(data) * where)] ^= 0x10
    path.write_bytes(bytes(data))


def npz_arrays(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


def assert_same_arrays(a: Path, b: Path) -> None:
    """Two npz files hold the same arrays, bit for bit."""
    x, y = npz_arrays(a), npz_arrays(b)
    assert sorted(x) == sorted(y), (a, b)
    for name in x:
        np.testing.assert_array_equal(x[name], y[name], err_msg=f"{a}:{name}")


# ------------------------------------------------------------------------------------- the real smoke pipeline


TINY_PIPELINE = """
import dataclasses, sys
import artifact.experiments.profiles as profiles
profiles.PROFILES["smoke"] = dataclasses.replace(
    profiles.PROFILES["smoke"], trace=dataclasses.replace(profiles.PROFILES["smoke"].trace, samples=1), count=6, candidates=80, kinds=("hidden", "mlp"),
    carryover=profiles.CarryOverPlan(patch_kinds=("mlp",)))
from artifact.cli import main
sys.exit(main(["pipeline", *sys.argv[1:]]))
"""


def tiny_profile() -> bool:
    """ARTIFACT_FAULTS_PROFILE=tiny: the slow fault runs use a smaller smoke profile (6 facts, hidden and mlp, one
    sample, no verdict: expected/ has no profile for it) where the real one cannot finish in time."""
    return os.environ.get("ARTIFACT_FAULTS_PROFILE", "smoke") == "tiny"


def pipeline_command(out: Path, *extra: str) -> list[str]:
    """`./run_all.sh --out OUT` (embedded models, smoke profile, verify.py at the end) without its bootstrap; the
    tiny profile's pipeline (no verdict) when `tiny_profile()`."""
    if tiny_profile():
        return [sys.executable, "-c", TINY_PIPELINE, "--out", str(out), "--no-progress", "--no-verify", *extra]
    return [str(REPO / "run_all.sh"), "--out", str(out), "--no-progress", *extra]


def finished_ok(result_stdout: str, returncode: int) -> bool:
    """The pipeline finished: PASS for the smoke profile, exit 0 without a verdict for the tiny one."""
    if tiny_profile():
        return returncode == 0 and "verdict: not verified" in result_stdout
    return returncode == 0 and "verdict: PASS" in result_stdout


PIPELINE_ENV = {**ENV, "ARTIFACT_SKIP_BOOTSTRAP": "1", "ARTIFACT_PYTHON": sys.executable}
PIPELINE_ENV.pop("OMP_NUM_THREADS")
PIPELINE_ENV.pop("MKL_NUM_THREADS")


COMPARED_ARRAYS = ("runs/*/traces/*/*.npz", "runs/*/aggregate/*.npz", "carryover/facts/*.npz",
                   "transcription/facts/*.npz", "corruption/facts/*/*.npz")
COMPARED_DOCUMENTS = ("comparison/comparison.json", "carryover/carryover.json", "transcription/transcription.json",
                      "corruption/corruption.json")


def compared_files(out: Path) -> list[str]:
    """Every array file of a pipeline run (traces, aggregates, the facts of the carry-over, implicit-transcription
    and corruption-choice steps), relative to the results folder."""
    patterns = COMPARED_ARRAYS
    return sorted(p.relative_to(out).as_posix() for pattern in patterns for p in out.glob(pattern))


def assert_same_run(a: Path, b: Path) -> int:
    """Two pipeline runs hold the same array files with the same arrays, bit for bit, and the same comparison,
    carry-over, implicit-transcription and corruption-choice numbers; returns how many array files were compared."""
    import json

    names = compared_files(a)
    assert names == compared_files(b)
    for name in names:
        assert_same_arrays(a / name, b / name)
    for doc in COMPARED_DOCUMENTS:
        # where the run lives is not a result
        x, y = ((folder / doc).read_text().replace(str(folder), "<results>") for folder in (a, b))
        assert json.loads(x) == json.loads(y), doc
    return len(names)


def cache_problems(cache: Path) -> list[str]:
    """What is torn in a project cache (ARTIFACT_CACHE_DIR): a speech-cache entry that does not match its sha256 (or
    has none), a dequantised model folder whose recorded digests fail, a temporary file or folder left behind.
    Empty when every entry is whole."""
    import hashlib

    from artifact.core.fileio import TMP_PREFIX
    from artifact.models.loading import cached_folder_problem

    problems = [f"left behind: {p}" for p in cache.rglob(TMP_PREFIX + "*")]
    for entry in (p for p in (cache / "speech").rglob("*") if p.is_file() and p.suffix in (".json", ".npy")):
        digest = entry.with_name(entry.name + ".sha256")
        if not digest.is_file():
            problems.append(f"{entry}: no digest")
        elif hashlib.sha256(entry.read_bytes()).hexdigest() != digest.read_text().split()[0]:
            problems.append(f"{entry}: differs from its sha256")
    for folder in (p for p in (cache / "embedded").glob("*") if p.is_dir() and not p.name.startswith(TMP_PREFIX)):
        problem = cached_folder_problem(folder)
        if problem:
            problems.append(f"{folder}: {problem}")
    return problems
