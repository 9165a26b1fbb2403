"""The pipeline's options reach the run (issue 25): `--facts NAME_OR_PATH` (offline runs of every profile), checked
through the real command line with the steps replaced by one that records what the arms would read."""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from artifact.cli import main
from artifact.core.layout import PIPELINE_FILE
from artifact.experiments import pipeline as pipeline_module
from artifact.experiments.pipeline import Step, run_label
from artifact.experiments.profiles import PROFILES
from artifact.facts import OWN_FACTS_PATH


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No network (every download fails, as with `docker run --network none`), an empty project cache, no
    checkpoints; the pipeline's steps replaced by one that records each arm's request."""
    def refuse(*args, **kwargs):
        raise urllib.error.URLError("network disabled in this test")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setenv("ARTIFACT_CACHE_DIR", str(tmp_path / "empty-cache"))
    monkeypatch.delenv("ARTIFACT_FACTS_DIR", raising=False)
    monkeypatch.delenv("SPIRITLM_CHECKPOINTS_DIR", raising=False)
    seen: dict[str, object] = {}

    def record(run) -> None:
        seen.update(t2t=run.request("t2t").facts, s2t=run.request("s2t").facts, profile=run.profile)

    monkeypatch.setattr(pipeline_module, "STEPS", (Step("record", "what the arms would read", record),))
    return seen


def _pipeline(out: Path, *extra: str) -> int:
    return main(["pipeline", "--model", "embedded", "--out", str(out), "--no-verify", "--no-progress", *extra])


def test_facts_path_reaches_the_arms_and_a_copy_of_known_1000_is_the_profiles_set(offline, known_1000_path,
                                                                                   tmp_path):
    """`--facts PATH` with a copy of ROME's file: the arms read that file, no network is needed, and the profile
    records `known_1000` (the same experiment: it resumes and verifies like the profile's own)."""
    copy = tmp_path / "elsewhere" / "rome.json"
    copy.parent.mkdir()
    shutil.copy(known_1000_path, copy)
    out = tmp_path / "review"
    assert _pipeline(out, "--profile", "review", "--facts", str(copy)) == 0
    assert offline["t2t"] == offline["s2t"] == str(copy.resolve())
    assert offline["profile"].facts == "known_1000"
    stored = json.loads((out / PIPELINE_FILE).read_text())
    assert stored["profile"]["facts"] == "known_1000"
    assert run_label("spiritlm", offline["profile"], PROFILES["review"].facts) == "spiritlm-review"


def test_review_profile_runs_offline_from_the_facts_dir(offline, known_1000_path, tmp_path, monkeypatch):
    """Without --facts, the review profile's known_1000 comes from $ARTIFACT_FACTS_DIR (the image's copy)."""
    folder = tmp_path / "data"
    folder.mkdir()
    shutil.copy(known_1000_path, folder / "known_1000.json")
    monkeypatch.setenv("ARTIFACT_FACTS_DIR", str(folder))
    assert _pipeline(tmp_path / "review", "--profile", "review") == 0
    assert offline["t2t"] == "known_1000" and offline["profile"].facts == "known_1000"


def test_without_the_file_or_network_the_run_stops_before_any_model_with_the_ways_out(offline, tmp_path, capsys):
    assert _pipeline(tmp_path / "review", "--profile", "review") == 2
    err = capsys.readouterr().err
    assert "--facts PATH" in err and "ARTIFACT_FACTS_DIR" in err and "network" in err
    assert "record" not in offline  # no step ran
    assert _pipeline(tmp_path / "x", "--facts", str(tmp_path / "absent.json")) == 2
    assert "absent.json does not exist" in capsys.readouterr().err


def test_another_fact_set_gets_its_own_folder_and_identity(offline, tmp_path):
    """A smoke run over another fact file records that file, is named apart from the smoke profile's folder, and
    verify's identity check refuses it against the recorded smoke profile (facts fingerprint and profile.facts)."""
    from artifact.verification.identity import check_identity, identity_of

    records = json.loads(OWN_FACTS_PATH.read_text(encoding="utf-8"))[:40]
    custom = tmp_path / "my facts.json"
    custom.write_text(json.dumps(records), encoding="utf-8")
    out = tmp_path / "smoke"
    assert _pipeline(out, "--facts", str(custom)) == 0
    profile = offline["profile"]
    assert offline["t2t"] == str(custom.resolve()) and profile.facts == str(custom.resolve())
    assert json.loads((out / PIPELINE_FILE).read_text())["profile"]["facts"] == str(custom.resolve())
    assert run_label("embedded", profile, PROFILES["smoke"].facts) == "embedded-smoke-facts-my_facts"
    # the same run without --facts is another experiment: the folder refuses it
    assert _pipeline(out) == 2
    # verify: a manifest of this run against the recorded smoke profile's identity
    from dataclasses import asdict

    from artifact.facts import facts_fingerprint, load_facts

    recorded = json.loads((pipeline_module.REPO_ROOT / "expected" / "embedded-smoke" / "manifest.json").read_text())
    manifest = {"model_name": "embedded", "facts_fingerprint": facts_fingerprint(load_facts(custom)),
                "settings": {"profile": asdict(profile)}}
    check = check_identity(identity_of(manifest, weights=False), {
        k: v for k, v in recorded["identity"].items() if k in ("model", "facts_fingerprint", "profile")})
    assert check.verdict == "FAIL" and "facts_fingerprint" in check.detail and "profile.facts" in check.detail


def test_a_named_set_other_than_the_profiles_is_labelled():
    from dataclasses import replace

    assert run_label("embedded", replace(PROFILES["smoke"], facts="known_1000"), "own") == "embedded-smoke-known_1000"
    assert run_label("embedded", PROFILES["smoke"], "own") == "embedded-smoke"
