"""A real Python environment holding only what verify.py says it needs: numpy and scipy at requirements.lock's
versions, hash-checked, installed by the project's uv into a fresh venv (from uv's cache: about a second). Neither
torch nor matplotlib is importable there, so a test that runs verify.py with it proves the claim instead of checking
what one `import` pulls in."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("numpy", "scipy")


def locked_requirements(packages: tuple[str, ...] = PACKAGES, lock: Path = REPO / "requirements.lock") -> str:
    """The lock's entries (pin and every --hash line) of `packages`."""
    entries, keep = [], False
    for line in lock.read_text().splitlines():
        if not line.startswith((" ", "\t", "#")) and line.strip():
            keep = re.split(r"[=<>\[ ;]", line, maxsplit=1)[0].lower() in packages
        if keep and not line.lstrip().startswith("#"):
            entries.append(line)
    found = {re.split(r"[=<>\[ ;]", e, maxsplit=1)[0].lower() for e in entries if not e.startswith((" ", "\t"))}
    if found != set(packages):
        raise RuntimeError(f"{lock} pins {sorted(found)} of {list(packages)}")
    return "\n".join(entries) + "\n"


def numpy_scipy_venv(folder: Path) -> Path:
    """Create the environment in `folder`; returns its python."""
    folder = Path(folder)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(folder)], check=True, timeout=120)
    requirements = folder / "requirements.txt"
    requirements.write_text(locked_requirements())
    uv = Path(sys.executable).parent / "uv"
    python = folder / "bin" / "python"
    subprocess.run([str(uv), "pip", "install", "--quiet", "--python", str(python), "--require-hashes", "-r",
                    str(requirements)], check=True, timeout=600)
    return python
