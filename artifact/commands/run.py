"""`run`: trace every known fact for every kind into a results folder keyed by the settings (resumable)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from artifact.core.names import NOISE_STREAMS

EXAMPLE = """examples:
  python -m artifact run --arm t2t --model embedded --facts own --limit 40 --kinds hidden,mlp,attn --samples 10 \\
      --out results/
  python -m artifact run --facts known_1000 --limit 40 --severed --out results/   # plus the severed-path run

Results go to <out>/<arm>-<model>-<key>/ (key: hash of model, facts, noise, samples, window, seed, batch size,
positions, arm), one npz per (fact, kind) under traces/<kind>/. Rerunning the same command resumes: finished
results are skipped. Changed settings go to another folder. Then: `aggregate --results DIR`, `plot --results DIR`.

scale-out (disjoint shards of the facts, same numbers as one process with the same --batch-size):
  torchrun --standalone --nproc-per-node 4 -m artifact run --facts known_1000 --out results/   # 1 per GPU
  sbatch --array=0-7 scripts/slurm_array.sbatch                                    # one array task per shard
  python -m artifact run ... --shard 2/8                                           # shard 2 of 8 by hand
Shards share one --out folder, or run in separate folders joined by `python -m artifact merge`."""
log = logging.getLogger(__name__)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """The trace settings shared by every arm (they key the results folder)."""
    parser.add_argument("--model", help="'embedded' (T->T default), 'embedded-speech' (S->T default), 'spiritlm' or "
                        "a model folder")
    parser.add_argument("--facts", default="own",
                        help="'own' (the project's set, default), 'known_1000' (ROME's, cached) or a JSON path")
    parser.add_argument("--limit", type=positive_int, help="trace only the first N known facts (file order)")
    parser.add_argument("--kinds", default="hidden,mlp,attn",
                        help="comma-separated states to restore: hidden, mlp, attn (default: all three)")
    parser.add_argument("--severed", action="store_true",
                        help="also run the severed-path experiment (ROME Fig. 3) at the last subject token")
    parser.add_argument("--samples", type=positive_int, default=10, help="corrupted runs per cell (default 10)")
    parser.add_argument("--window", type=positive_int, default=10, help="mlp/attn restoration window (default 10)")
    parser.add_argument("--noise", default="3sigma",
                        help="noise scale: a number, or '3sigma' (default) = 3 x std of the subject embeddings of "
                             "every record of the fact file (S->T: of the spoken prompts' subject speech tokens); "
                             "S->T also takes 'text' = the T->T level")
    parser.add_argument("--seed", type=int, default=1, help="noise seed (default 1, as ROME)")
    parser.add_argument("--noise-streams", choices=NOISE_STREAMS, default="rome",
                        help="where the noise samples come from: 'rome' (default: ROME's one RandomState(seed) "
                             "stream) or 'per_sample' (sample s from its own stream (seed, s): independent samples)")
    parser.add_argument("--batch-size", type=positive_int, default=128, help="rows per forward pass (default 128)")
    parser.add_argument("--positions", default="all",
                        help="'all' (default) or 'representatives:K': first/last and up to K middle subject tokens, "
                             "first subsequent, up to K further, last")
    parser.add_argument("--out", type=Path, default=Path("results"), help="results root (default results/)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--shard", type=shard_spec, default=None, metavar="I/N",
                        help="trace only shard I of N (0 <= I < N) of the facts; default: from torchrun (RANK/"
                             "WORLD_SIZE) or a SLURM job array (SLURM_ARRAY_TASK_*), else all; 0/1 forces all")


def shard_spec(text: str):
    """argparse type of --shard: 'I/N' -> Shard."""
    from artifact.experiments.sharding import Shard, ShardError

    try:
        return Shard.parse(text)
    except ShardError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run",
        help="trace all known facts for every kind (resumable)",
        description="Trace every known fact of a fact file for every kind (ROME causal tracing); one result file per "
                    "(fact, kind), resumable, in a folder keyed by the settings.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--arm", default="t2t", choices=["t2t", "s2t"],
                        help="t2t: text prompt, text answer (default); s2t: spoken prompt (speech pipeline)")
    add_run_options(parser)
    speech = parser.add_argument_group("S->T arm (--arm s2t)")
    speech.add_argument("--candidates", type=positive_int,
                        help="speak only the first N facts of the file (default: all); recorded in the settings")
    speech.add_argument("--tts", default="espeak-ng", help="espeak-ng (offline, default) or melotts (the paper's)")
    speech.add_argument("--recognizer", default="none",
                        help="none (default), pocketsphinx or whisper-small (the paper's WER check)")
    speech.add_argument("--aligner", default="pocketsphinx", help="pocketsphinx (offline, default) or mms-fa")
    speech.add_argument("--unit-tokenizer", default="kmeans-logmel",
                        help="kmeans-logmel (offline stand-in, default) or spiritlm (HuBERT 25 Hz, 500 units)")
    speech.add_argument("--max-wer", type=float, help="drop spoken prompts above this WER (needs a recognizer)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from artifact.core.groups import parse_position_policy
    from artifact.experiments.runner import parse_jobs

    jobs = list(parse_jobs(args.kinds))
    if "severed" in jobs:
        raise ValueError("--kinds takes hidden, mlp, attn; ask for the severed-path run with --severed.")
    parse_position_policy(args.positions)
    if args.severed:
        jobs.append("severed")
    from artifact.experiments.sharding import device_from_env, resolve_shard

    shard, device = resolve_shard(args.shard), device_from_env()  # --shard, else torchrun / SLURM array, else all
    if shard is not None:
        log.info("shard %s of the facts%s", shard, f" on {device}" if device else "")
    from artifact.experiments.arms import ArmRequest, run_arm
    from artifact.speech.front_end import FrontEndConfig

    front_end = None
    if args.arm == "s2t":
        front_end = FrontEndConfig(tts=args.tts, recognizer=args.recognizer, aligner=args.aligner,
                                   unit_tokenizer=args.unit_tokenizer, max_wer=args.max_wer)
    request = ArmRequest(facts=args.facts, out=args.out, kinds=jobs, samples=args.samples, window=args.window,
                         noise=args.noise, seed=args.seed, noise_streams=args.noise_streams,
                         batch_size=args.batch_size, positions=args.positions,
                         candidates=args.candidates if args.arm == "s2t" else None, front_end=front_end,
                         progress=not args.no_progress, device=device)
    summary = run_arm(args.arm, args.model, request, limit=args.limit, shard=shard)
    where = "" if summary.shard is None else f" (shard {summary.shard})"
    print(f"{len(summary.computed)} results computed, {len(summary.skipped)} already present{where}, "
          f"{summary.seconds:.0f} s -> {summary.run_dir}")
    after = "" if summary.shard is None else f" (once all {summary.shard.count} shards have finished)"
    print(f"next{after}: python -m artifact aggregate --results {summary.run_dir} && "
          f"python -m artifact plot --results {summary.run_dir}")
    return 0
