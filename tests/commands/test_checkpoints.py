"""`python -m artifact checkpoints check DIR` names every missing file of SpiritLM's layout, and says which tokenizer
layout it found (markers as pieces of tokenizer.model, or as added tokens with legacy true or false)."""

from __future__ import annotations

import json

import pytest

from artifact.cli import main
from artifact.core.spiritlm import SPEECH_TOKENIZER_FILES, SPIRITLM_BASE_SUBDIR, SPIRITLM_MODEL_FILES
from tests.support.spiritlm_checkpoint import TOKENIZER_LAYOUTS, VOCAB_ROWS, write_tokenizer


def _make_layout(root, skip=(), layout="pieces"):
    """Every file of the layout: a real tokenizer in `layout` and config.json's vocab_size, the rest placeholders."""
    write_tokenizer(root / SPIRITLM_BASE_SUBDIR, layout)
    (root / SPIRITLM_BASE_SUBDIR / "config.json").write_text(json.dumps({"vocab_size": VOCAB_ROWS}))
    for path in [SPIRITLM_BASE_SUBDIR / name for name in SPIRITLM_MODEL_FILES] + list(SPEECH_TOKENIZER_FILES):
        if str(path) in skip:
            (root / path).unlink(missing_ok=True)
            continue
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        if not (root / path).is_file():
            (root / path).write_bytes(b"x")


def test_complete_layout_passes(tmp_path, capsys):
    _make_layout(tmp_path)
    assert main(["checkpoints", "check", str(tmp_path)]) == 0
    assert "OK" in capsys.readouterr().out


@pytest.mark.parametrize("layout", list(TOKENIZER_LAYOUTS))
def test_check_names_the_tokenizer_layout(tmp_path, capsys, layout):
    _make_layout(tmp_path, layout=layout)
    assert main(["checkpoints", "check", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"tokenizer layout: {layout}: [Text], [Speech], [Hu0..500] at 32000..32502 as " in out
    assert ("pieces of tokenizer.model" if layout.startswith("pieces") else "added tokens of tokenizer_config.json") \
        in out
    assert f"legacy {'false' if layout in ('added', 'pieces-nonlegacy') else 'true'}" in out
    assert "answer token '▁Paris'" in out  # never the bare '▁', whatever the layout
    assert ("generate() returns misaligned text" in out) == layout.startswith("added")
    assert "32503 tokens, 32512 output rows (config.json): rows 32503..32511 decode to no token" in out


def test_a_damaged_tokenizer_fails_the_check(tmp_path, capsys):
    _make_layout(tmp_path)
    (tmp_path / SPIRITLM_BASE_SUBDIR / "tokenizer.model").write_bytes(b"x")
    assert main(["checkpoints", "check", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("FAIL: ") and "tokenizer cannot be used" in out and "Traceback" not in out


def test_missing_files_are_each_named(tmp_path, capsys):
    skip = {"spiritlm_model/spirit-lm-base-7b/pytorch_model.bin", "speech_tokenizer/hubert_25hz/L11_quantizer_500.pt"}
    _make_layout(tmp_path, skip)
    assert main(["checkpoints", "check", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    for path in skip:
        assert f"missing: {path}" in out
    assert "2 file(s)" in out


def test_not_a_folder(tmp_path, capsys):
    assert main(["checkpoints", "check", str(tmp_path / "nope")]) == 1
    assert "not a folder" in capsys.readouterr().out
