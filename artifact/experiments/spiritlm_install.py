"""Meta's spiritlm package for a SpiritLM run, installed when missing the way bootstrap creates the venv: at the
pinned commit (SPIRITLM_COMMIT), through `scripts/install_spiritlm.sh`, offline from a vendored source archive when
one is found, else from GitHub. Torch-free.

Where a vendored archive is looked for, first match wins (named `spiritlm-<first 7 hex of the commit>.tar.gz`, a
`git archive` of that commit; a SHA256SUMS file beside it, when present, must list it):
1. `$ARTIFACT_VENDOR_DIR/` (any folder, e.g. a copy of the sources brought to an offline GPU node);
2. `vendor/` of the checkout (git-ignored; the same folder a `SOURCES=vendor` container build reads).

The install script writes a stamp (`spiritlm-artifact-commit.txt`, the commit) into the environment's site-packages;
the package counts as installed when the stamp names the pinned commit. A spiritlm installed some other way (no stamp,
e.g. an editable clone) is used as it is, with a note: its commit is then the user's choice.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
INSTALL_SCRIPT = REPO_ROOT / "scripts" / "install_spiritlm.sh"
COMMIT_FILE = REPO_ROOT / "SPIRITLM_COMMIT"
STAMP_FILE = "spiritlm-artifact-commit.txt"  # written by scripts/install_spiritlm.sh into site-packages
VENDOR_ENV = "ARTIFACT_VENDOR_DIR"
REPO_VENDOR_DIR = REPO_ROOT / "vendor"


class SpiritlmInstallError(RuntimeError):
    """The spiritlm package is missing and could not be installed; the message says how to install it."""


@dataclass(frozen=True)
class InstallPlan:
    """What to do about the spiritlm package before a SpiritLM run."""

    action: str  # 'none' (installed at the pinned commit), 'use' (installed without a stamp), 'install'
    commit: str  # the pinned commit (SPIRITLM_COMMIT)
    archive: Path | None = None  # the vendored source archive to install from (offline); None: from GitHub
    reason: str = ""

    def command(self) -> list[str]:
        """The install command (scripts/install_spiritlm.sh [ARCHIVE])."""
        return [str(INSTALL_SCRIPT)] + ([str(self.archive)] if self.archive else [])


def pinned_commit() -> str:
    """The spiritlm commit the artifact is pinned to (SPIRITLM_COMMIT)."""
    return COMMIT_FILE.read_text().strip()


def vendored_archive(commit: str, env: Mapping[str, str] | None = None,
                     repo_vendor: Path = REPO_VENDOR_DIR) -> Path | None:
    """The first `spiritlm-<commit[:7]>.tar.gz` in $ARTIFACT_VENDOR_DIR, then the checkout's vendor/; None if none."""
    env = os.environ if env is None else env
    name = f"spiritlm-{commit[:7]}.tar.gz"
    folders = ([Path(env[VENDOR_ENV])] if env.get(VENDOR_ENV) else []) + [repo_vendor]
    for folder in folders:
        if (folder / name).is_file():
            return folder / name
    if env.get(VENDOR_ENV):
        log.warning("%s=%s holds no %s; installing spiritlm from GitHub", VENDOR_ENV, env[VENDOR_ENV], name)
    return None


def plan_install(site: Path, importable: bool, commit: str | None = None, env: Mapping[str, str] | None = None,
                 repo_vendor: Path = REPO_VENDOR_DIR) -> InstallPlan:
    """Decide from the environment's site-packages (`site`), whether `import spiritlm` finds a package there or
    elsewhere (`importable`), and the vendored archives, what to do before a SpiritLM run."""
    commit = commit or pinned_commit()
    stamp = site / STAMP_FILE
    stamped = stamp.read_text().strip() if stamp.is_file() else None
    if stamped == commit and importable:
        return InstallPlan("none", commit, reason=f"spiritlm {commit[:7]} is installed")
    if importable and stamped is None:
        return InstallPlan("use", commit, reason="spiritlm is installed, but not by scripts/install_spiritlm.sh: its "
                                                 f"commit is unknown (the artifact is pinned to {commit[:7]})")
    why = "missing" if not importable else f"at commit {stamped[:7] if stamped else '?'}, not the pinned one"
    return InstallPlan("install", commit, vendored_archive(commit, env, repo_vendor),
                       reason=f"spiritlm is {why}")


def ensure_spiritlm(python: str = sys.executable, env: Mapping[str, str] | None = None,
                    run: Callable[..., subprocess.CompletedProcess] = subprocess.run,
                    repo_vendor: Path = REPO_VENDOR_DIR) -> InstallPlan:
    """Install Meta's spiritlm package into `python`'s environment (default: this one) when it is missing or at
    another commit, via scripts/install_spiritlm.sh: offline from a vendored archive when one is found, else from
    GitHub. Returns the plan carried out; SpiritlmInstallError (exit 2) with the manual fix when the install fails."""
    env = dict(os.environ if env is None else env)
    this = Path(python).absolute() == Path(sys.executable).absolute()
    if this:
        site = Path(sysconfig.get_paths()["purelib"])
        importable = importlib.util.find_spec("spiritlm") is not None
    else:
        site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                   capture_output=True, text=True, check=True).stdout.strip())
        importable = (site / "spiritlm" / "__init__.py").is_file()
    plan = plan_install(site, importable, env=env, repo_vendor=repo_vendor)
    if plan.action == "use":
        print(f"note: {plan.reason}", flush=True)
    if plan.action != "install":
        return plan
    source = f"offline from {plan.archive}" if plan.archive else "from GitHub (network needed)"
    print(f"spiritlm: {plan.reason}; installing Meta's package at {plan.commit[:7]} {source} "
          f"({INSTALL_SCRIPT.relative_to(REPO_ROOT)})", flush=True)
    done = run(plan.command(), env={**env, "PYTHON": python}, cwd=str(REPO_ROOT))
    if done.returncode != 0:
        offline = (f"put a `git archive` of that commit at ${VENDOR_ENV}/spiritlm-{plan.commit[:7]}.tar.gz (or in "
                   "vendor/ of the checkout) to install offline")
        raise SpiritlmInstallError(
            f"Could not install Meta's spiritlm package at {plan.commit} ({' '.join(plan.command())} exited "
            f"{done.returncode}; its messages are above). Fix what they name and rerun, or {offline}; the container "
            "image carries the package.")
    if this:
        importlib.invalidate_caches()
        if importlib.util.find_spec("spiritlm") is None:
            raise SpiritlmInstallError(f"{INSTALL_SCRIPT.name} reported success, but `import spiritlm` still fails "
                                       f"in {python}; install it by hand: {' '.join(plan.command())}")
    return plan

