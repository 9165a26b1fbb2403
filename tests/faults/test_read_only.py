"""Read-only places (issue 29): a read-only checkout (the container case) and a read-only cache, as real read-only
bind mounts (root only; skipped otherwise). Results go wherever --out says and the checkout is only read; a missing
--out is one line naming the fix. A read-only cache is read; what it lacks is computed and not stored (one warning),
or, for the model it lacks, one line naming ARTIFACT_CACHE_DIR."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from artifact.models.loading import cache_root, embedded_model_dir
from tests.support.faults import ENV, REPO, TRACEBACK, assert_one_line_error, run, run_command, tiny_model


@pytest.fixture
def read_only(tmp_path):
    """`read_only(source)` bind-mounts `source` read-only under tmp_path and returns the mount point."""
    if os.geteuid() != 0:
        pytest.skip("read-only bind mounts need root; CI runs these as root")
    mounted: list[Path] = []

    def make(source: Path) -> Path:
        target = tmp_path / f"ro-{len(mounted)}"
        target.mkdir()
        for command in (["mount", "--bind", str(source), str(target)],
                        ["mount", "-o", "remount,bind,ro", str(target)]):
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                subprocess.run(["umount", "-l", str(target)], check=False)
                pytest.skip(f"cannot make a read-only bind mount here: {done.stderr.strip()}")
        mounted.append(target)
        return target

    yield make
    for target in reversed(mounted):
        subprocess.run(["umount", "-l", str(target)], check=False)


def test_a_read_only_checkout_runs_with_out_elsewhere_and_says_what_to_do_without(read_only, tmp_path):
    model, facts = tiny_model(tmp_path / "tiny")
    checkout = read_only(REPO)
    env = {**ENV, "PYTHONPATH": str(checkout), "PYTHONDONTWRITEBYTECODE": "1"}
    python = [sys.executable, "-m", "artifact"]
    without_out = run(python + ["pipeline", "--no-progress"], env=env, cwd=checkout)
    assert_one_line_error(without_out, f"cannot write {checkout / 'results'}", "Read-only file system",
                          "Pass --out DIR")
    done = run(run_command(model, facts, tmp_path / "out"), env=env, cwd=checkout)
    assert done.returncode == 0 and TRACEBACK not in done.stderr, done.stderr
    assert "results computed" in done.stdout and list((tmp_path / "out").glob("*/traces/*/*.npz"))


def test_a_read_only_cache_is_read_and_not_written(read_only, tmp_path):
    embedded_model_dir()  # the shared cache holds the dequantised model
    cache = read_only(cache_root())
    env = {**ENV, "ARTIFACT_CACHE_DIR": str(cache)}
    out = tmp_path / "known.json"
    done = run([sys.executable, "-m", "artifact", "known", "--modality", "speech", "--limit", "2", "--out",
                str(out)], env=env)
    assert done.returncode == 0 and TRACEBACK not in done.stderr, done.stderr
    assert len(json.loads(out.read_text())["checks"]) == 2
    if "not writable" in done.stderr:  # entries it lacked were computed, not stored, said once
        assert done.stderr.count("is not writable") == 1


def test_an_empty_read_only_cache_says_which_folder_to_use(read_only, tmp_path):
    empty = tmp_path / "empty-cache"
    empty.mkdir()
    cache = read_only(empty)
    done = run([sys.executable, "-c", "import sys; from artifact.cli import main; sys.exit(main(['known', '--limit', "
                f"'1', '--out', '{tmp_path / 'k.json'}']))"], env={**ENV, "ARTIFACT_CACHE_DIR": str(cache)})
    assert_one_line_error(done, f"The model cache {cache / 'embedded'} is not writable", "ARTIFACT_CACHE_DIR")
