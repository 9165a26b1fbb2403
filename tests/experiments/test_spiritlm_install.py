"""A SpiritLM run installs Meta's spiritlm package when it is missing (issue 25), the way bootstrap creates the venv:
the pinned commit, offline from a vendored archive when one is found, else from GitHub; a failure is a clear error.
The decision is checked on stand-in environments, and one real install from the vendored archive runs into a fresh
throwaway venv (a second of uv's work: the venv borrows this one's dependencies through a .pth file)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from artifact.experiments import spiritlm_install as install
from artifact.experiments.spiritlm_install import SpiritlmInstallError, ensure_spiritlm, plan_install

REPO = Path(__file__).resolve().parents[2]
COMMIT = (REPO / "SPIRITLM_COMMIT").read_text().strip()
ARCHIVE = f"spiritlm-{COMMIT[:7]}.tar.gz"
SHARED_VENDOR = REPO.parent / "shared" / "vendor"


def _stand_in_python(tmp_path: Path) -> tuple[str, Path]:
    """An executable that answers the site-packages question like a venv's python would, and its site folder."""
    site = tmp_path / "site-packages"
    site.mkdir()
    python = tmp_path / "bin" / "python"
    python.parent.mkdir()
    python.write_text(f"#!/bin/sh\necho '{site}'\n")
    python.chmod(0o755)
    return str(python), site


def test_the_plan_follows_the_stamp_and_prefers_a_vendored_archive(tmp_path):
    site, vendor, repo_vendor = tmp_path / "site", tmp_path / "vendor", tmp_path / "repo-vendor"
    for folder in (site, vendor, repo_vendor):
        folder.mkdir()
    env = {"ARTIFACT_VENDOR_DIR": str(vendor)}
    missing = plan_install(site, importable=False, commit=COMMIT, env=env, repo_vendor=repo_vendor)
    assert missing.action == "install" and missing.archive is None and "missing" in missing.reason  # from GitHub
    assert missing.command() == [str(install.INSTALL_SCRIPT)]
    (repo_vendor / ARCHIVE).write_bytes(b"x")
    assert plan_install(site, False, COMMIT, env, repo_vendor).archive == repo_vendor / ARCHIVE
    (vendor / ARCHIVE).write_bytes(b"x")  # $ARTIFACT_VENDOR_DIR first
    offline = plan_install(site, False, COMMIT, env, repo_vendor)
    assert offline.archive == vendor / ARCHIVE and offline.command()[-1] == str(vendor / ARCHIVE)
    (site / "spiritlm-artifact-commit.txt").write_text(COMMIT + "\n")
    assert plan_install(site, True, COMMIT, env, repo_vendor).action == "none"
    (site / "spiritlm-artifact-commit.txt").write_text("0" * 40)
    other = plan_install(site, True, COMMIT, env, repo_vendor)
    assert other.action == "install" and "not the pinned one" in other.reason
    (site / "spiritlm-artifact-commit.txt").unlink()
    assert plan_install(site, True, COMMIT, env, repo_vendor).action == "use"  # someone else's install: left alone


def test_a_missing_package_is_installed_with_the_script_and_a_failure_names_the_fix(tmp_path, capsys):
    python, site = _stand_in_python(tmp_path)
    vendor = tmp_path / "vendor"
    vendor.mkdir()
    (vendor / ARCHIVE).write_bytes(b"x")
    calls = []

    def run(command, env, cwd):
        calls.append((command, env["PYTHON"]))
        return subprocess.CompletedProcess(command, 0)

    plan = ensure_spiritlm(python, env={"ARTIFACT_VENDOR_DIR": str(vendor)}, run=run, repo_vendor=tmp_path)
    assert plan.action == "install" and calls == [([str(install.INSTALL_SCRIPT), str(vendor / ARCHIVE)], python)]
    assert "installing Meta's package at" in capsys.readouterr().out
    with pytest.raises(SpiritlmInstallError, match=r"exited 1.*ARTIFACT_VENDOR_DIR/spiritlm-\w{7}\.tar\.gz"):
        ensure_spiritlm(python, env={}, run=lambda command, env, cwd: subprocess.CompletedProcess(command, 1),
                        repo_vendor=tmp_path)


def test_a_real_install_from_the_vendored_archive_into_a_fresh_venv(tmp_path):
    """The install step for real, offline: scripts/install_spiritlm.sh with the vendored archive, into a new venv
    that lacks spiritlm; then the package, the stamp and no stray `tests` package are there; a second call does
    nothing."""
    if not (SHARED_VENDOR / ARCHIVE).is_file():
        pytest.skip(f"no vendored archive {SHARED_VENDOR / ARCHIVE} (a `git archive` of spiritlm at SPIRITLM_COMMIT)")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "zz-borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")  # torch etc. from this venv
    uv = Path(sys.executable).parent / "uv"
    if uv.is_file():
        (venv / "bin" / "uv").symlink_to(uv)
    assert not (site / "spiritlm").exists()
    env = {**os.environ, "ARTIFACT_VENDOR_DIR": str(SHARED_VENDOR)}
    plan = ensure_spiritlm(str(python), env=env)
    assert plan.action == "install" and plan.archive == SHARED_VENDOR / ARCHIVE
    assert (site / "spiritlm" / "__init__.py").is_file() and not (site / "tests").exists()
    assert (site / "spiritlm-artifact-commit.txt").read_text().strip() == COMMIT
    found = subprocess.run([str(python), "-c", "import spiritlm; print(spiritlm.__file__)"], capture_output=True,
                           text=True, check=True).stdout.strip()
    assert Path(found).is_relative_to(site)
    assert ensure_spiritlm(str(python), env=env, run=None).action == "none"  # installed: nothing runs
    shutil.rmtree(venv)
