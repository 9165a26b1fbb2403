"""The manifest records what the image baked in: the lock its venv came from and the sha256 list of its speech
weights (scripts/fetch_weights.py writes /opt/weights/SHA256SUMS at build time; the Dockerfile points
ARTIFACT_WEIGHTS_SUMS at it), so that two runs' front ends can be compared file by file."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from artifact import manifest


def test_the_manifest_records_the_baked_weights_sums(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sums = tmp_path / "SHA256SUMS"
    sums.write_text(f"{'a' * 64}  whisper/small.pt\n{'b' * 64}  huggingface/hub/models--x/snapshots/1/config.json\n")
    monkeypatch.setenv(manifest.WEIGHTS_SUMS_ENV, str(sums))
    data = manifest.collect_manifest({"seed": 0})
    assert data["image"]["weights"] == {
        "path": str(sums), "sha256": hashlib.sha256(sums.read_bytes()).hexdigest(),
        "files": {"whisper/small.pt": "a" * 64, "huggingface/hub/models--x/snapshots/1/config.json": "b" * 64}}
    monkeypatch.setenv(manifest.WEIGHTS_SUMS_ENV, str(tmp_path / "absent"))  # an image built with FETCH_WEIGHTS=0
    assert manifest.collect_manifest()["image"]["weights"] == {"path": str(tmp_path / "absent"), "missing": True}
    monkeypatch.delenv(manifest.WEIGHTS_SUMS_ENV)  # not in an image
    assert manifest.collect_manifest()["image"]["weights"] is None


def test_the_manifest_records_the_images_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lock = tmp_path / "LOCK"
    lock.write_text("requirements-cpu.lock\n")
    monkeypatch.setattr(manifest, "IMAGE_LOCK_FILE", lock)
    data = manifest.collect_manifest()
    assert data["image"]["lock"] == "requirements-cpu.lock"
    assert data["locks"]["requirements-cpu.lock"] == hashlib.sha256(
        (manifest.REPO_ROOT / "requirements-cpu.lock").read_bytes()).hexdigest()
    monkeypatch.setattr(manifest, "IMAGE_LOCK_FILE", tmp_path / "none")
    assert manifest.collect_manifest()["image"]["lock"] is None


def test_the_dockerfile_points_the_manifest_at_the_baked_sums() -> None:
    from tests.test_dockerfile import env_vars, runs

    assert env_vars()[manifest.WEIGHTS_SUMS_ENV] == "/opt/weights/SHA256SUMS"
    assert 'echo "$lock" > LOCK' in runs() and manifest.IMAGE_LOCK_FILE == manifest.REPO_ROOT / "LOCK"
