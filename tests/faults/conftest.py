"""Fixtures of the fault-injection suite: a size-limited tmpfs (a real full disk; root only, skipped otherwise) and
the uninterrupted smoke run the slow fault runs are compared with."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.faults import PIPELINE_ENV, REPO, finished_ok, pipeline_command


class Tmpfs:
    """A tmpfs mounted at `path` with a size limit that can be changed while mounted (`resize`)."""

    def __init__(self, path: Path, size: str) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                              capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a size-limited tmpfs here ({done.stderr.strip()}); the disk-full cases need "
                        "root (CI runs them as root)")

    def resize(self, size: str) -> None:
        subprocess.run(["mount", "-o", f"remount,size={size}", str(self.path)], check=True)

    def unmount(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], check=False)


@pytest.fixture
def tmpfs(tmp_path):
    """`tmpfs(size)` mounts a size-limited tmpfs under tmp_path (unmounted after the test)."""
    if os.geteuid() != 0:
        pytest.skip("a size-limited tmpfs needs root (mount -t tmpfs -o size=...); CI runs these as root")
    mounted: list[Tmpfs] = []

    def make(size: str, name: str = "disk") -> Tmpfs:
        mounted.append(Tmpfs(tmp_path / name, size))
        return mounted[-1]

    yield make
    for fs in mounted:
        fs.unmount()


@pytest.fixture(scope="session")
def smoke_reference(tmp_path_factory) -> Path:
    """An uninterrupted `./run_all.sh` smoke run (embedded models), ending with PASS: what every fault run of the
    slow cases must reproduce bit for bit."""
    given = os.environ.get("ARTIFACT_FAULTS_REFERENCE")  # reuse a finished run (e.g. shared by two test processes)
    if given:
        from artifact.experiments.pipeline import STEPS

        deadline = time.monotonic() + 7200  # it may still be running (started beside these tests)
        while time.monotonic() < deadline:
            try:
                steps = json.loads((Path(given) / "steps.json").read_text())
            except (OSError, ValueError):
                steps = {}
            if all(steps.get(step.name, {}).get("done") for step in STEPS):  # every step of this version
                return Path(given)
            time.sleep(5)
        pytest.fail(f"{given} did not finish")
    out = tmp_path_factory.mktemp("smoke-reference") / "results"
    t0 = time.monotonic()
    done = subprocess.run(pipeline_command(out), cwd=REPO, env=PIPELINE_ENV, capture_output=True, text=True,
                          timeout=7200)
    assert finished_ok(done.stdout, done.returncode), done.stdout[-3000:] + done.stderr[-3000:]
    print(f"uninterrupted smoke run: {time.monotonic() - t0:.0f} s, "
          f"{sum(p.stat().st_size for p in out.rglob('*') if p.is_file()) / 1e6:.1f} MB")
    return out
