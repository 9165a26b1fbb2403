"""`train-embedded-speech`: train and ship the embedded speech-text model's new embedding rows."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from artifact.commands.options import add_command, add_io_options

EXAMPLE = """example (the command that produced the shipped model; see its manifest.json):
  python -m artifact train-embedded-speech --facts known_1000=known_1000 --facts own=own --epochs 9"""


def register(subparsers: argparse._SubParsersAction) -> None:
    from artifact.training.config import DistillConfig  # lazy: fast --help

    defaults = DistillConfig()
    parser = add_command(
        subparsers, "train-embedded-speech",
        aliases=["train-speech-lm"],  # the name the shipped model's manifest records
        help="train the embedded speech-text model (SmolLM2 + SpiritLM tokens)",
        description="Distil the new [Text]/[Speech]/[Hu..] embedding rows of the extended embedded model from the "
        "frozen model's text prompts, on its Known-t2t facts (20%% held out); resumable.",
        epilog=EXAMPLE,
    )
    parser.add_argument("--facts", action="append", metavar="NAME=SOURCE",
                        help="fact sources (known_1000, own or a JSON path), repeatable; "
                        "default: known_1000=known_1000 and own=own")
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--threads", type=int, default=defaults.threads,
                        help="CPU threads for training (default %(default)s); part of the settings, since the rows "
                        "are reproduced bitwise only with the same count")
    add_io_options(parser, out="where to write new_rows.safetensors + manifest.json "
                               "(default: the shipped location, artifact/data/embedded_speech)")
    parser.add_argument("--max-facts", type=int, help="keep only N Known-t2t facts (fixed hash order), for quick "
                        "experiments; recorded in the manifest")
    parser.add_argument("--marked-text", action="store_true", help="also train on '[Text]' + text prompts (twice "
                        "the cost; the embedded T->T arm uses the plain prompt on the frozen model)")
    parser.add_argument("--work-dir", type=Path, help="checkpoints for resuming (default: in the project cache)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from artifact.models.embedded_speech import SHIPPED_DIR  # lazy: torch
    from artifact.models.loading import cache_root  # lazy: torch
    from artifact.training.config import DistillConfig  # lazy: fast --help
    from artifact.training.embedded_speech import train_embedded_speech  # lazy: torch

    sources = {}
    for item in args.facts or ["known_1000=known_1000", "own=own"]:
        name, sep, source = item.partition("=")
        if not sep or not name or not source:
            raise ValueError(f"--facts takes NAME=SOURCE (e.g. own=own); got {item!r}")
        sources[name] = source
    config = DistillConfig(epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
                           seed=args.seed, threads=args.threads)
    # No epoch count in the folder name: raising --epochs resumes and extends a finished run.
    work = args.work_dir or cache_root() / "train-embedded-speech" / f"seed{config.seed}-b{config.batch_size}-" \
        f"lr{config.learning_rate}-t{config.threads}"
    manifest = train_embedded_speech(sources, args.out or SHIPPED_DIR, work, config,
                                     max_facts=args.max_facts, marked_text=args.marked_text,
                                     argv=["python", "-m", "artifact", *sys.argv[1:]])
    print(f"train facts {len(manifest['train_facts'])}, held out {len(manifest['held_out_facts'])}")
    for name, value in manifest["accuracy"].items():
        print(f"  {name}: {value:.3f}")
    print(f"rows sha256 {manifest['rows_sha256']}; {manifest['train_seconds']} s")
    return 0
