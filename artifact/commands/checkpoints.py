"""`checkpoints check DIR`: is DIR a SpiritLM checkpoints root in the layout the pipeline needs?

The pipeline reads SpiritLM base 7B and, for speech units, only the two HuBERT 25 Hz files (the `spiritlm` unit
tokenizer loads them alone); the HiFi-GAN vocoder and the expressive models are not needed. Torch-free, so this
module is also where the layout lives (`artifact.speech.units` and the run manifest import it).
"""

from __future__ import annotations

import argparse
from pathlib import Path

# What the `spiritlm` unit tokenizer loads (spiritlm_hubert()'s files; relative to the checkpoints root).
SPEECH_TOKENIZER_FILES = (
    Path("speech_tokenizer") / "hubert_25hz" / "mhubert_base_25hz.pt",
    Path("speech_tokenizer") / "hubert_25hz" / "L11_quantizer_500.pt",
)


def missing_checkpoint_files(root: Path) -> list[str]:
    """Paths, relative to `root`, of the files BRIEF section 2's layout needs that are absent."""
    from artifact.models.loading import SPIRITLM_BASE_SUBDIR, SPIRITLM_MODEL_FILES

    needed = [SPIRITLM_BASE_SUBDIR / name for name in SPIRITLM_MODEL_FILES] + list(SPEECH_TOKENIZER_FILES)
    return [str(path) for path in needed if not (root / path).is_file()]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "checkpoints",
        help="check a SpiritLM checkpoints folder",
        description="Check that a folder holds SpiritLM base 7B and its HuBERT speech tokenizer in the layout "
        "the pipeline reads (spiritlm_model/spirit-lm-base-7b/..., speech_tokenizer/hubert_25hz/"
        "{mhubert_base_25hz.pt, L11_quantizer_500.pt}). The vocoder (hifigan_*) is not needed.",
        epilog="example:\n  python -m artifact checkpoints check /path/to/spiritlm/checkpoints",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("action", choices=["check"], help="what to do (check)")
    parser.add_argument("root", type=Path, help="the checkpoints root (what SPIRITLM_CHECKPOINTS_DIR points to)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    root: Path = args.root
    if not root.is_dir():
        print(f"FAIL: {root} is not a folder. Point it at the SpiritLM checkpoints root (see REPRODUCE.md).")
        return 1
    missing = missing_checkpoint_files(root)
    if missing:
        print(f"FAIL: {root} lacks {len(missing)} file(s) of SpiritLM's layout:")
        for path in missing:
            print(f"  missing: {path}")
        return 1
    print(f"OK: {root} holds SpiritLM base 7B and its HuBERT speech tokenizer (all the pipeline reads; no vocoder "
          "is needed).")
    return 0
