"""SpiritLM on a CPU by accident (issue 25): the review and full profiles refuse to start without a CUDA device unless
--allow-cpu, with the cost model's CPU estimate in the message; smoke (it checks the path) runs with a note. The CUDA
check is injected, so this runs the same on a machine with a GPU."""

from __future__ import annotations

import pytest

from artifact.cli import main
from artifact.core.spiritlm import missing_checkpoint_files
from artifact.experiments import pipeline as pipeline_module
from artifact.experiments import spiritlm_install
from artifact.experiments.choice import ModelChoice
from artifact.experiments.pipeline import CpuRefusedError, Step, check_device
from artifact.experiments.profiles import PROFILES

SPIRITLM = ModelChoice("spiritlm", "spiritlm", "spiritlm", {}, "model: SpiritLM")
EMBEDDED = ModelChoice("embedded", "embedded", "embedded-speech", {}, "model: embedded")


@pytest.fixture
def layout(tmp_path, monkeypatch):
    """A complete SpiritLM layout of placeholder files (nothing here loads them), no GPU, and steps (and the spiritlm
    install step, tests/experiments/test_spiritlm_install.py) that record."""
    root = tmp_path / "checkpoints"
    for rel in missing_checkpoint_files(root):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x")
    monkeypatch.delenv("SPIRITLM_CHECKPOINTS_DIR", raising=False)
    monkeypatch.setattr(pipeline_module, "cuda_available", lambda: False)
    ran: list[str] = []
    monkeypatch.setattr(pipeline_module, "STEPS", (Step("known", "record", lambda run: ran.append(run.profile.name)),))
    monkeypatch.setattr(spiritlm_install, "ensure_spiritlm", lambda: ran.append("install spiritlm"))
    return root, ran


def _run(root, out, *extra: str) -> int:
    return main(["pipeline", "--model", "spiritlm", "--checkpoints", str(root), "--front-end", "offline", "--out",
                 str(out), "--no-verify", "--no-progress", *extra])


@pytest.mark.parametrize("profile", ["review", "full"])
def test_spiritlm_review_and_full_refuse_a_cpu_with_the_estimate(layout, tmp_path, capsys, profile):
    root, ran = layout
    assert _run(root, tmp_path / "out", "--profile", profile) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: SpiritLM's {profile} profile needs a CUDA GPU") and "Traceback" not in err
    assert "about 27 GB of RAM" in err and "estimated trace time on 2 CPU cores (fp32)" in err and " days)" in err
    assert "docker run --gpus all" in err and "GPU node" in err and "--allow-cpu" in err
    assert not ran and not (tmp_path / "out").exists()  # refused before any step or folder


def test_allow_cpu_runs_with_a_warning_and_smoke_is_exempt(layout, tmp_path, capsys, monkeypatch, known_1000_path):
    root, ran = layout
    monkeypatch.setenv("ARTIFACT_FACTS_DIR", str(known_1000_path.parent))
    assert _run(root, tmp_path / "review", "--profile", "review", "--allow-cpu") == 0
    assert "warning: no CUDA device, running SpiritLM on the CPU as asked (--allow-cpu)" in capsys.readouterr().out
    assert _run(root, tmp_path / "smoke", "--profile", "smoke") == 0
    out = capsys.readouterr().out
    assert "SpiritLM runs on the CPU because the smoke profile only checks the path" in out
    assert ran == ["install spiritlm", "review", "install spiritlm", "smoke"]  # the package first (when missing)


def test_the_check_only_concerns_spiritlm_without_cuda():
    review = PROFILES["review"]
    assert check_device(SPIRITLM, review, has_cuda=lambda: True) is None
    assert check_device(EMBEDDED, review, has_cuda=lambda: False) is None
    with pytest.raises(CpuRefusedError, match="--allow-cpu"):
        check_device(SPIRITLM, PROFILES["standard"], has_cuda=lambda: False)
    assert check_device(SPIRITLM, review, allow_cpu=True, has_cuda=lambda: False).startswith("warning:")
