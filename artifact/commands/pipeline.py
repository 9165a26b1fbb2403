"""`pipeline`: the whole reproduction (what `run_all.sh` runs): known filters, both arms, comparison, verdict."""

from __future__ import annotations

import argparse
from pathlib import Path

from artifact.core.speechtext import model_names
from artifact.experiments.profiles import PROFILES

from artifact.commands.options import add_command, add_io_options

EXAMPLE = """examples:
  ./run_all.sh                                   # embedded models, smoke profile, ends with PASS/FAIL
  ./run_all.sh --profile standard                # C1-C3 verdicts on the embedded models (about 5 h on 2 cores)
  ./run_all.sh --profile standard --no-corruption-choice   # the same verdicts without the corruption choice
  ./run_all.sh --model spiritlm --checkpoints /checkpoints   # SpiritLM, review profile (about 4 h on one H100)
  ./run_all.sh --model spiritlm --checkpoints /checkpoints --profile full   # the paper's scale
  ./run_all.sh --model spiritlm --checkpoints DIR --profile smoke --front-end offline   # SpiritLM path, no downloads
  ./run_all.sh --model spiritlm --checkpoints DIR --facts /data/known_1000.json   # no network: a copy of ROME's file

A rerun skips finished steps and resumes traces fact by fact. Results: results/<model>-<profile>/."""




def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(
        subparsers, "pipeline",
        help="the whole reproduction with a PASS/FAIL verdict (run_all.sh)",
        description="Facts -> speech front end -> known filters -> T->T and S->T traces -> aggregates -> "
                    "comparison -> figures -> manifest -> verify.py.",
        epilog=EXAMPLE,
    )
    parser.add_argument("--profile", choices=sorted(PROFILES),
                        help="smoke (minutes on a CPU; default for the embedded models), standard (embedded, C1-C3 "
                             "verdicts, about 5 h on 2 cores; 96 min without the corruption choice), review "
                             "(SpiritLM's default: about 4 h on one H100) or full (the paper's scale); `python -m "
                             "artifact cost --profile NAME` estimates each")
    parser.add_argument("--model", choices=model_names(),
                        help="a registered speech-text model (artifact.core.speechtext); default: spiritlm when the "
                             "checkpoints folder holds its layout, else embedded")
    parser.add_argument("--checkpoints", help="SpiritLM checkpoints root (default: $SPIRITLM_CHECKPOINTS_DIR)")
    add_io_options(parser, out="results folder (default results/<model>-<profile>)", no_progress="no progress bars")
    parser.add_argument("--expected", type=Path, help="expected profile (default expected/<model>-<profile>)")
    parser.add_argument("--front-end", choices=["auto", "paper", "offline"], default="auto",
                        help="speech front end: paper (MeloTTS, Whisper-small, MMS_FA; SpiritLM only), offline "
                             "(espeak-ng, pocketsphinx) or auto (default: the paper's stages that can run here, the "
                             "offline ones otherwise; a banner line says which)")
    parser.add_argument("--facts", metavar="NAME_OR_PATH",
                        help="fact set instead of the profile's: known_1000 (ROME's, found in $ARTIFACT_FACTS_DIR, "
                             "the cache, else downloaded), own, or the path of a JSON file in ROME's schema (a copy "
                             "of known_1000.json runs offline and counts as known_1000); another set than the "
                             "profile's gets its own results folder and no recorded profile to verify against")
    parser.add_argument("--seed", type=int, help="noise seed (default: the profile's, 1); for replicate runs")
    parser.add_argument("--batch-size", type=int, help="rows per forward pass (default: the profile's, 128)")
    parser.add_argument("--allow-cpu", action="store_true",
                        help="run SpiritLM's review or full profile without a CUDA GPU (refused otherwise: fp32 on "
                             "the CPU needs about 27 GB of RAM and days; the message gives the estimate); smoke runs "
                             "on a CPU without it")
    parser.add_argument("--no-corruption-choice", action="store_true",
                        help="leave out the corruption-choice step (noise at 1 and 5 sigma, token replacement: "
                             "beyond the paper, and most of a standard or review run's time); verify.py says SKIP "
                             "for its checks. Rerun without it, same --out, to add it: finished steps are kept")
    parser.add_argument("--no-verify", action="store_true", help="stop before verify.py")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from artifact.experiments.pipeline import run_pipeline  # lazy: fast --help

    return run_pipeline(args.profile, args.model, args.checkpoints, args.out, args.expected,
                        progress=not args.no_progress, verify=not args.no_verify, seed=args.seed,
                        batch_size=args.batch_size, front_end=args.front_end, facts=args.facts,
                        allow_cpu=args.allow_cpu, corruption=not args.no_corruption_choice)
