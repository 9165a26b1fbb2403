"""`python -m artifact checkpoints check DIR` names every missing file of SpiritLM's layout."""

from __future__ import annotations

from artifact.cli import main
from artifact.core.spiritlm import SPEECH_TOKENIZER_FILES, SPIRITLM_BASE_SUBDIR, SPIRITLM_MODEL_FILES


def _make_layout(root, skip=()):
    for path in [SPIRITLM_BASE_SUBDIR / name for name in SPIRITLM_MODEL_FILES] + list(SPEECH_TOKENIZER_FILES):
        if str(path) in skip:
            continue
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(b"x")


def test_complete_layout_passes(tmp_path, capsys):
    _make_layout(tmp_path)
    assert main(["checkpoints", "check", str(tmp_path)]) == 0
    assert "OK" in capsys.readouterr().out


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
