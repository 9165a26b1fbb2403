"""`checkpoints check DIR`: is DIR a SpiritLM checkpoints root in the layout the pipeline needs?

The pipeline reads SpiritLM base 7B and, for speech units, only the two HuBERT 25 Hz files (the `spiritlm` unit
tokenizer loads them alone); the HiFi-GAN vocoder and the expressive models are not needed. The layout itself lives
in `artifact.core.spiritlm`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from artifact.core.spiritlm import missing_checkpoint_files


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
