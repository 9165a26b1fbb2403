"""Fixtures shared by the SpiritLM-path tests: one SpiritLM-shaped checkpoint per session (building it teaches the
tiny LM its facts, about a minute of CPU), used read-only by every test that needs it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def spiritlm_checkpoint_root(tmp_path_factory) -> Path:
    """A SpiritLM-shaped checkpoints root whose tiny LM was taught the first three facts of each relation
    (tests/support/spiritlm_checkpoint.py)."""
    from tests.support.spiritlm_checkpoint import write_spiritlm_checkpoint

    pytest.importorskip("spiritlm.speech_tokenizer", reason="Meta's spiritlm package is not installed (the checkpoint's "
                        "speech prompts use its HuBERT units; scripts/install_spiritlm.sh installs it)")
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (scripts/bootstrap.sh installs it where it can)")
    return write_spiritlm_checkpoint(tmp_path_factory.mktemp("spiritlm-checkpoints"))
