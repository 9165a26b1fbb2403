"""The hash-pinned locks agree: requirements-cpu.lock (the CPU image's) is requirements.lock without the CUDA-only
packages scripts/compile_locks.sh names, the same version and hashes for everything else; MeloTTS's lock pins the
torch set at the artifact's versions, so one torch serves both venvs in the image (scripts/share_torch.py)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARE = REPO / "scripts" / "share_torch.py"


def pins(path: Path) -> dict[str, tuple[str, frozenset[str]]]:
    """{name: (version, hashes)} of a uv-compiled lock."""
    out = {}
    for block in re.split(r"\n(?=[a-z0-9])", path.read_text()):
        match = re.match(r"([a-z0-9][a-z0-9._-]*)==(\S+)", block)
        if match:
            out[match.group(1)] = (match.group(2), frozenset(re.findall(r"--hash=sha256:([0-9a-f]{64})", block)))
    return out


def cpu_omitted() -> set[str]:
    """The packages scripts/compile_locks.sh leaves out of the CPU lock (its CPU_OMIT array)."""
    text = (REPO / "scripts" / "compile_locks.sh").read_text()
    return set(re.search(r"^CPU_OMIT=\(([^)]*)\)", text, flags=re.M).group(1).split())


def test_cpu_lock_pins_the_same_versions_and_hashes_without_the_cuda_only_packages() -> None:
    full, cpu = pins(REPO / "requirements.lock"), pins(REPO / "requirements-cpu.lock")
    assert cpu_omitted() == {"triton", "nvidia-cusolver-cu12", "nvidia-cuda-nvrtc-cu12", "nvidia-nvtx-cu12"}
    assert set(full) - set(cpu) == cpu_omitted()  # exactly those are left out ...
    assert not set(cpu) - set(full)  # ... and nothing is added
    different = {name: (full[name][0], cpu[name][0]) for name in cpu if cpu[name] != full[name]}
    assert not different, f"the locks pin different versions or wheels: {different}; run scripts/compile_locks.sh"
    # The torch wheel is the same one (PyPI's only x86_64 build of 2.6.0 is CUDA's); what torch links at import stays.
    for needed in ("torch", "torchaudio", "nvidia-cublas-cu12", "nvidia-cudnn-cu12", "nvidia-cuda-cupti-cu12",
                   "nvidia-cusparselt-cu12", "nvidia-nccl-cu12", "nvidia-nvjitlink-cu12"):
        assert needed in cpu
    header = (REPO / "requirements-cpu.lock").read_text().splitlines()[1]
    assert "uv pip compile requirements.in" in header
    assert sorted(re.findall(r"--no-emit-package (\S+)", header)) == sorted(cpu_omitted())


def test_melotts_lock_pins_the_artifacts_torch_set() -> None:
    """Both venvs of the image share one torch: every torch, torchaudio, triton and nvidia-* pin of MeloTTS's lock is
    the artifact's, wheel for wheel."""
    full, melo = pins(REPO / "requirements.lock"), pins(REPO / "requirements-melotts.lock")
    shared = {name for name in melo if re.fullmatch(r"torch|torchaudio|triton|nvidia-[a-z0-9-]+", name)}
    assert {"torch", "torchaudio"} <= shared
    assert {name: melo[name][0] for name in shared} == {name: full[name][0] for name in shared}
    assert all(melo[name][1] == full[name][1] for name in shared)


def _share(tmp_path: Path, lock: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SHARE), "--lock", str(lock), "--out", str(tmp_path / "rest.lock"),
                           "--shared", str(tmp_path / "shared")], capture_output=True, text=True, timeout=120)


def test_share_torch_links_the_torch_set_and_writes_the_rest(tmp_path: Path) -> None:
    """Run by this venv's Python on MeloTTS's real lock: links to this venv's torch set (importable, with metadata,
    from a Python that has only the links on its path), the rest of the lock unchanged."""
    done = _share(tmp_path, REPO / "requirements-melotts.lock")
    assert done.returncode == 0, done.stderr
    shared = tmp_path / "shared"
    assert (shared / "torch").is_symlink() and (shared / "torch").resolve() == Path(
        __import__("torch").__file__).parent.resolve()
    assert any(p.name.startswith("torch-2.6.0") and p.name.endswith(".dist-info") for p in shared.iterdir())
    rest = pins(tmp_path / "rest.lock")
    melo = pins(REPO / "requirements-melotts.lock")
    assert not [name for name in rest if re.fullmatch(r"torch|torchaudio|triton|nvidia-.*", name)]
    assert rest == {name: pin for name, pin in melo.items() if name not in
                    {n for n in melo if re.fullmatch(r"torch|torchaudio|triton|nvidia-.*", n)}}
    assert "torch==2.6.0" in done.stderr
    # A bare interpreter (no site-packages) sees torch's metadata through the links alone.
    probe = subprocess.run([sys.executable, "-S", "-c", "import sys, importlib.metadata as m; "
                            f"sys.path.insert(0, {str(shared)!r}); print(m.version('torch'), m.version('torchaudio'))"],
                           capture_output=True, text=True, timeout=60)
    assert probe.stdout.split() == ["2.6.0", "2.6.0"], probe.stderr


def test_share_torch_refuses_other_versions(tmp_path: Path) -> None:
    lock = tmp_path / "melotts.lock"
    text = (REPO / "requirements-melotts.lock").read_text().replace("\ntorch==2.6.0 ", "\ntorch==2.5.1 ")
    lock.write_text(text)
    done = _share(tmp_path, lock)
    assert done.returncode == 1
    assert "torch 2.6.0" in done.stderr and "2.5.1 in melotts.lock" in done.stderr
    assert "scripts/compile_locks.sh" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "rest.lock").exists()


@pytest.mark.needs_index
def test_cpu_lock_is_what_compile_locks_writes(tmp_path: Path) -> None:
    """The CPU lock recompiled as scripts/compile_locks.sh does (from requirements.lock's pins, --no-emit-package for
    each omitted package) is the committed one."""
    from tests.test_dockerfile import _index_reachable

    if not _index_reachable():
        pytest.skip("PyPI unreachable from here: cannot resolve requirements.in")
    out = tmp_path / "requirements-cpu.lock"
    out.write_bytes((REPO / "requirements.lock").read_bytes())
    omit = [arg for name in sorted(cpu_omitted()) for arg in ("--no-emit-package", name)]
    done = subprocess.run([str(Path(sys.executable).parent / "uv"), "pip", "compile", "requirements.in",
                           "--python-version", "3.11", "--python-platform", "x86_64-unknown-linux-gnu",
                           "--generate-hashes", "--quiet", "--output-file", str(out), *omit],
                          capture_output=True, text=True, cwd=REPO, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert pins(out) == pins(REPO / "requirements-cpu.lock")


def test_install_melotts_refuses_a_torch_from_that_is_no_venv(tmp_path: Path) -> None:
    done = subprocess.run([str(REPO / "scripts" / "install_melotts.sh"), "--torch-from", str(tmp_path / "none"),
                           str(tmp_path / "venv")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--torch-from needs a virtual environment" in done.stderr
    assert not (tmp_path / "venv").exists()
