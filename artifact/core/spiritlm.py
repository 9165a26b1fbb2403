"""SpiritLM's checkpoint layout and token names (BRIEF section 2), without loading anything.

    <root>/spiritlm_model/spirit-lm-base-7b/{config.json, generation_config.json, pytorch_model.bin,
                                             special_tokens_map.json, tokenizer_config.json, tokenizer.model}
    <root>/speech_tokenizer/hubert_25hz/{mhubert_base_25hz.pt, L11_quantizer_500.pt}

The speech units need only the two HuBERT files (no vocoder). The whole tree of Meta's checkpoints (spiritlm's
checkpoints/README.md at the pinned commit) is `ARTIFACTS`: what `checkpoints fetch` recognises, and from which the
base run's file lists are derived. Token ids are never hard-coded: they are looked up by these names in the loaded
tokenizer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

CHECKPOINTS_ENV = "SPIRITLM_CHECKPOINTS_DIR"


@dataclass(frozen=True)
class Artifact:
    """One folder of Meta's checkpoint tree (spiritlm checkpoints/README.md at the pinned commit)."""

    name: str  # the folder's own name, also the expected stem of its download (e.g. spirit-lm-base-7b.tar.gz)
    folder: PurePosixPath  # where it goes, relative to the checkpoints root
    files: tuple[str, ...]  # what the folder holds
    needed: bool  # read by this artifact's base run (SpiritLM base LM + HuBERT 25 Hz units)
    what: str


def _a(folder: str, files: tuple[str, ...], needed: bool, what: str) -> Artifact:
    path = PurePosixPath(folder)
    return Artifact(path.name, path, files, needed, what)


LM_FILES: tuple[str, ...] = ("config.json", "generation_config.json", "pytorch_model.bin", "special_tokens_map.json",
            "tokenizer_config.json", "tokenizer.model")
ARTIFACTS: tuple[Artifact, ...] = (
    _a("spiritlm_model/spirit-lm-base-7b", LM_FILES, True, "SpiritLM base 7B (the language model)"),
    _a("speech_tokenizer/hubert_25hz", ("mhubert_base_25hz.pt", "L11_quantizer_500.pt"), True,
       "mHuBERT 25 Hz + 500-unit quantizer (the speech units)"),
    _a("spiritlm_model/spirit-lm-expressive-7b", LM_FILES, False, "SpiritLM expressive 7B (not used)"),
    _a("speech_tokenizer/hifigan_spiritlm_base", ("config.json", "generator.pt", "speakers.txt", "styles.txt"), False,
       "HiFi-GAN vocoder, base (speech output; not used)"),
    _a("speech_tokenizer/hifigan_spiritlm_expressive_w2v2", ("config.json", "generator.pt", "speakers.txt"), False,
       "HiFi-GAN vocoder, expressive (not used)"),
    _a("speech_tokenizer/style_encoder_w2v2", ("config.json", "pytorch_model.bin"), False,
       "style encoder, expressive (not used)"),
    _a("speech_tokenizer/vqvae_f0_quantizer", ("config.yaml", "model.pt"), False,
       "F0 (pitch) quantizer, expressive (not used)"),
)
BY_NAME: dict[str, Artifact] = {a.name: a for a in ARTIFACTS}
# Downloads that hold several artifacts: a parent folder of the tree, or the whole tree.
BUNDLES: dict[str, tuple[str, ...]] = {
    "spiritlm_model": tuple(a.name for a in ARTIFACTS if a.folder.parts[0] == "spiritlm_model"),
    "speech_tokenizer": tuple(a.name for a in ARTIFACTS if a.folder.parts[0] == "speech_tokenizer"),
    "checkpoints": tuple(BY_NAME),
    "spiritlm_checkpoints": tuple(BY_NAME),
    "spirit-lm-checkpoints": tuple(BY_NAME),
}
# Single files whose name alone says which artifact they belong to (others need the artifact's folder in the link's
# path, e.g. .../spirit-lm-base-7b/pytorch_model.bin).
SINGLE_FILES: dict[str, str] = {"mhubert_base_25hz.pt": "hubert_25hz", "L11_quantizer_500.pt": "hubert_25hz"}


# What the base run reads (BRIEF section 2), derived from the table: the LM folder's files, and the HuBERT files.
SPIRITLM_BASE_SUBDIR = Path(str(BY_NAME["spirit-lm-base-7b"].folder))
SPIRITLM_MODEL_FILES: tuple[str, ...] = BY_NAME["spirit-lm-base-7b"].files
SPEECH_TOKENIZER_FILES: tuple[Path, ...] = tuple(Path(str(BY_NAME["hubert_25hz"].folder)) / name
                                                 for name in BY_NAME["hubert_25hz"].files)
TEXT_MARKER, SPEECH_MARKER = "[Text]", "[Speech]"
SPIRITLM_MARKERS: tuple[str, ...] = (TEXT_MARKER, SPEECH_MARKER)


def missing_checkpoint_files(root: Path) -> list[str]:
    """Paths, relative to `root`, of the files the base run needs (BRIEF section 2's layout) that are absent."""
    needed = [SPIRITLM_BASE_SUBDIR / name for name in SPIRITLM_MODEL_FILES] + list(SPEECH_TOKENIZER_FILES)
    return [str(path) for path in needed if not (Path(root) / path).is_file()]
