"""SpiritLM's checkpoint layout and token names (BRIEF section 2), without loading anything.

    <root>/spiritlm_model/spirit-lm-base-7b/{config.json, generation_config.json, pytorch_model.bin,
                                             special_tokens_map.json, tokenizer_config.json, tokenizer.model}
    <root>/speech_tokenizer/hubert_25hz/{mhubert_base_25hz.pt, L11_quantizer_500.pt}

The speech units need only the two HuBERT files (no vocoder). Token ids are never hard-coded: they are looked up by
these names in the loaded tokenizer.
"""

from __future__ import annotations

from pathlib import Path

CHECKPOINTS_ENV = "SPIRITLM_CHECKPOINTS_DIR"
SPIRITLM_BASE_SUBDIR = Path("spiritlm_model") / "spirit-lm-base-7b"
SPIRITLM_MODEL_FILES: tuple[str, ...] = (
    "config.json",
    "generation_config.json",
    "pytorch_model.bin",
    "special_tokens_map.json",
    "tokenizer_config.json",
    "tokenizer.model",
)
SPEECH_TOKENIZER_FILES: tuple[Path, ...] = (
    Path("speech_tokenizer") / "hubert_25hz" / "mhubert_base_25hz.pt",
    Path("speech_tokenizer") / "hubert_25hz" / "L11_quantizer_500.pt",
)
TEXT_MARKER, SPEECH_MARKER = "[Text]", "[Speech]"
SPIRITLM_MARKERS: tuple[str, ...] = (TEXT_MARKER, SPEECH_MARKER)


def missing_checkpoint_files(root: Path) -> list[str]:
    """Paths, relative to `root`, of the files the base run needs (BRIEF section 2's layout) that are absent."""
    needed = [SPIRITLM_BASE_SUBDIR / name for name in SPIRITLM_MODEL_FILES] + list(SPEECH_TOKENIZER_FILES)
    return [str(path) for path in needed if not (Path(root) / path).is_file()]
