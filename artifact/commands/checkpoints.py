"""`checkpoints check DIR`: is DIR a SpiritLM checkpoints root in the layout the pipeline needs?
`checkpoints fetch --links FILE --into DIR`: download it there from the links Meta emails (artifact.download).

The pipeline reads SpiritLM base 7B and, for speech units, only the two HuBERT 25 Hz files (the `spiritlm` unit
tokenizer loads them alone); the HiFi-GAN vocoder and the expressive models are not needed. The layout itself lives
in `artifact.core.spiritlm`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from artifact.commands.options import add_command, add_io_options
from artifact.core.spiritlm import SPIRITLM_BASE_SUBDIR, missing_checkpoint_files

if TYPE_CHECKING:
    from artifact.models.tokenizer_layout import TokenizerLayout


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(
        subparsers, "checkpoints",
        help="check a SpiritLM checkpoints folder, or fetch it from Meta's emailed links",
        description="check: does a folder hold SpiritLM base 7B and its HuBERT speech tokenizer in the layout the "
        "pipeline reads (spiritlm_model/spirit-lm-base-7b/..., speech_tokenizer/hubert_25hz/"
        "{mhubert_base_25hz.pt, L11_quantizer_500.pt})? The vocoder (hifigan_*) is not needed. It also loads the "
        "tokenizer as SpiritLM does and says its layout: markers as pieces of tokenizer.model or as added tokens, "
        "legacy mode on or off, the S->T answer token, and the output rows beyond the tokenizer.\n"
        "fetch: download those artifacts into that layout from the links of Meta's approval email (one per line, "
        "or the whole email pasted into FILE; '-' reads standard input). Resumes interrupted downloads (rerun the "
        "same command), checks sizes and archives, skips the expressive model, vocoders, style encoder and F0 "
        "quantizer unless --all, and ends with the check. Links are secrets: only host and file name are ever "
        "printed; nothing of them is stored.",
        epilog="examples:\n  python -m artifact checkpoints check /path/to/spiritlm/checkpoints\n"
        "  python -m artifact checkpoints fetch --links links.txt --into /path/to/spiritlm/checkpoints",
    )
    parser.add_argument("action", choices=["check", "fetch"], help="what to do")
    parser.add_argument("root", type=Path, nargs="?", default=None,
                        help="check: the checkpoints root (what SPIRITLM_CHECKPOINTS_DIR points to)")
    parser.add_argument("--links", metavar="FILE", default=None,
                        help="fetch: a file holding the download links or the email's text ('-': standard input)")
    parser.add_argument("--into", type=Path, metavar="DIR", default=None, help="fetch: the checkpoints root to fill")
    parser.add_argument("--all", action="store_true",
                        help="fetch: also the artifacts the base run does not read (expressive model, vocoders, "
                             "style encoder, F0 quantizer)")
    parser.add_argument("--retries", type=int, default=3, metavar="N",
                        help="fetch: automatic resumed retries of an interrupted transfer (default 3)")
    add_io_options(parser, no_progress="fetch: no progress bar")
    parser.set_defaults(func=run)


def report_check(root: Path) -> int:
    """Print the layout check of `root` (OK with the tokenizer's layout, or every missing file, or why the tokenizer
    cannot be used); 0 when complete, else 1."""
    if not root.is_dir():
        print(f"FAIL: {root} is not a folder. Point it at the SpiritLM checkpoints root (see REPRODUCE.md).")
        return 1
    missing = missing_checkpoint_files(root)
    if missing:
        print(f"FAIL: {root} lacks {len(missing)} file(s) of SpiritLM's layout:")
        for path in missing:
            print(f"  missing: {path}")
        return 1
    layout = _tokenizer_layout(root / SPIRITLM_BASE_SUBDIR)
    if isinstance(layout, str):
        print(f"FAIL: {root / SPIRITLM_BASE_SUBDIR}'s tokenizer cannot be used: {layout}")
        return 1
    print(f"OK: {root} holds SpiritLM base 7B and its HuBERT speech tokenizer (all the pipeline reads; no vocoder "
          "is needed).")
    print("\n".join(layout.describe()))
    return 0


def _tokenizer_layout(folder: Path) -> "TokenizerLayout | str":
    """The tokenizer's layout, loaded as SpiritLM loads it, or why it cannot be loaded or used."""
    from artifact.models.loading import load_spiritlm_tokenizer  # lazy: torch
    from artifact.models.tokenizer_layout import tokenizer_layout  # lazy: fast --help

    try:
        return tokenizer_layout(load_spiritlm_tokenizer(folder), folder)
    except Exception as exc:  # a damaged or foreign tokenizer.model / tokenizer_config.json: say so, no traceback
        return f"{type(exc).__name__}: {exc}".strip().splitlines()[0]


def run(args: argparse.Namespace) -> int:
    if args.action == "check":
        if args.root is None:
            raise ValueError("checkpoints check needs the folder: python -m artifact checkpoints check DIR")
        return report_check(args.root)
    if args.links is None or args.into is None:
        raise ValueError("checkpoints fetch needs --links FILE (the links from Meta's email, or the email's text) "
                         "and --into DIR (the checkpoints root to fill)")
    from artifact.download import fetch  # lazy: fast --help

    if args.links == "-":
        text = sys.stdin.read()
    else:
        links = Path(args.links)
        if not links.is_file():
            raise FileNotFoundError(f"--links {links}: no such file (paste the links from Meta's email into it)")
        text = links.read_text(encoding="utf-8", errors="replace")
    fetch(text, args.into, include_all=args.all, retries=args.retries, progress=not args.no_progress)
    print("check:", flush=True)
    return report_check(args.into)
