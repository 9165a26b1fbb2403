"""`cost`: estimated time of a profile's traces (`--profile`), or of the full paper run on one H100 with its
arithmetic, from matmul FLOP counts and a sustained throughput (artifact.experiments.cost)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from artifact.commands.options import add_command, add_trace_options, trace_settings
from artifact.core.layout import COMPARISON_DIR, COMPARISON_FILE, SELECTION_FILE

from artifact.core.speechtext import model_names

EXAMPLE = ("examples:\n  python -m artifact cost --profile review --model spiritlm --device h100\n"
           "  python -m artifact cost --profile standard --model embedded --device cpu\n"
           "  python -m artifact cost                      (the full paper run, with its arithmetic)\n"
           "  python -m artifact cost --known-fraction 0.5 --mfu 0.3")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(
        subparsers, "cost",
        help="estimated time of the full paper run on one H100",
        description="Estimated time of the full paper run (every fact, text and spoken prompts, three kinds, all "
                    "positions) for SpiritLM 7B in bf16 on one H100, from counted matmul FLOPs of the engine's least "
                    "work and an assumed sustained throughput. Prints the arithmetic.",
        epilog=EXAMPLE,
    )
    parser.add_argument("--profile", help="estimate this profile's trace steps (smoke, standard, review, full) from "
                                          "typical prompts; the pipeline prints it again from the real prompts")
    parser.add_argument("--model", choices=model_names(), default="spiritlm",
                        help="with --profile: the speech-text model (default spiritlm)")
    parser.add_argument("--device", choices=("h100", "cpu"), default="h100",
                        help="with --profile: the device (h100: assumed 40%% of the bf16 peak; cpu: 2 cores, measured)")
    parser.add_argument("--size-from", metavar="RESULTS",
                        help="a finished pipeline run's folder: how many facts each claim condition needs for a CI "
                             "narrower than half its effect (n > n0 (2 x CI width / effect)^2)")
    parser.add_argument("--facts", type=int, default=1209, help="records in known_1000.json (default 1209)")
    parser.add_argument("--known-fraction", type=float, default=1.0,
                        help="fraction of facts the model answers correctly, per modality (only those are traced); "
                             "default 1.0, an upper bound")
    parser.add_argument("--text-tokens", type=int, default=12, help="text prompt length (default 12)")
    parser.add_argument("--text-subject-start", type=int, default=2, help="first subject token, text (BOS, [Text])")
    parser.add_argument("--spoken-tokens", type=int, default=60, help="spoken prompt length (default 60)")
    parser.add_argument("--spoken-subject-start", type=int, default=3, help="first subject token, spoken")
    add_trace_options(parser, ("samples", "window"))
    parser.add_argument("--mfu", type=float, default=0.4,
                        help="sustained fraction of the H100's dense bf16 peak (989 TFLOP/s); default 0.4")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from artifact.experiments.cost import H100_BF16_DENSE_PEAK, model_shape  # lazy: fast --help
    from artifact.tracing.config import TraceConfig  # lazy: fast --help
    from artifact.tracing.flops import least_flops, reference_flops  # lazy: fast --help

    if args.size_from is not None:
        return run_sizing(args)
    if args.profile is not None:
        return run_profile(args)
    if not 0 < args.known_fraction <= 1 or not 0 < args.mfu <= 1:
        raise ValueError("--known-fraction and --mfu must be in (0, 1]")
    shape = model_shape("spiritlm")
    throughput = args.mfu * H100_BF16_DENSE_PEAK
    facts = args.facts * args.known_fraction
    print(f"SpiritLM 7B: {shape.layers} layers, d={shape.d_model}, MLP {shape.d_mlp}, vocab {shape.vocab}; "
          f"samples={args.samples}, window={args.window}")
    print(f"assumed throughput: {args.mfu:.0%} of {H100_BF16_DENSE_PEAK / 1e12:.0f} TFLOP/s (H100 dense bf16) = "
          f"{throughput / 1e12:.0f} TFLOP/s sustained")
    print(f"facts traced per modality: {args.facts} x {args.known_fraction:g} = {facts:.0f}\n")
    total_least = total_ref = 0.0
    for name, tokens, start in (("text", args.text_tokens, args.text_subject_start),
                                ("spoken", args.spoken_tokens, args.spoken_subject_start)):
        for kind in ("hidden", "mlp", "attn"):
            config = TraceConfig.of(trace_settings(args), kind=kind)
            least = least_flops(shape, tokens, args.samples, start, range(tokens), config)
            ref = reference_flops(shape, tokens, args.samples, tokens)
            total_least += facts * least
            total_ref += facts * ref
            print(f"{name:6} T={tokens:<3} {kind:6}: engine {least / 1e12:8.1f} TFLOP/fact "
                  f"x {facts:.0f} facts / {throughput / 1e12:.0f} TFLOP/s = {facts * least / throughput / 3600:6.2f} h"
                  f"   (plain method {ref / 1e12:8.1f} TFLOP/fact, {facts * ref / throughput / 3600:6.2f} h)")
    print(f"\ntotal: engine {total_least / 1e15:.0f} PFLOP -> {total_least / throughput / 3600:.1f} h on one H100 "
          f"(plain per-cell method: {total_ref / 1e15:.0f} PFLOP -> {total_ref / throughput / 3600:.1f} h)")
    print("(matmul FLOPs only; attention scores counted dense over all keys; the clean and corrupted runs included.\n"
          " Assumes the engine's least work runs at the throughput of plain batched forwards, as measured on CPU by\n"
          " bench/bench_engine.py, where the engine's FLOP rate was 0.8-1.3x the plain method's; --mfu is that of\n"
          " plain bf16 forwards of a 7B model on an H100, not measured here: no GPU.)")
    return 0


def run_profile(args: argparse.Namespace) -> int:
    """Print a profile's estimate: facts, FLOPs per fact and minutes per arm on the chosen device."""
    from artifact.experiments.cost import describe_estimate, describe_later_steps, estimate  # lazy: fast --help
    from artifact.experiments.pipeline import space_needed  # lazy: fast --help
    from artifact.experiments.profiles import PROFILES  # lazy: fast --help

    if args.profile not in PROFILES:
        raise ValueError(f"--profile must be one of {', '.join(PROFILES)}; got {args.profile!r}")
    profile = PROFILES[args.profile]
    facts = None
    if profile.count is None:  # every Known fact: bound it by the fact file and --known-fraction
        facts = {arm: round(args.facts * args.known_fraction) for arm in ("t2t", "s2t")}
    est = estimate(profile, args.model, args.device, facts)
    print(f"profile {profile.name}: {profile.purpose}; budget: {profile.budget}")
    for arm, a in est["arms"].items():
        print(f"  {arm}: {a['facts']} facts, typical prompt {a['prompt_tokens']} tokens, positions {a['positions']}: "
              f"{a['tflop_per_fact']:.3g} TFLOP per fact -> {a['seconds'] / 60:.0f} min")
    for line in describe_later_steps(est):
        print(line)
    print(describe_estimate(est))
    print(space_needed(profile, args.model, Path("its results folder")))
    return 0


def run_sizing(args: argparse.Namespace) -> int:
    """Print, per claim condition of a finished run, the facts needed for a CI narrower than half its effect."""
    from artifact.analysis.sizing import facts_needed  # lazy: fast --help

    results = Path(args.size_from)
    comparison_path, selection_path = results / COMPARISON_DIR / COMPARISON_FILE, results / SELECTION_FILE
    for path in (comparison_path, selection_path):
        if not path.is_file():
            raise ValueError(f"{path} is missing: --size-from needs a pipeline run's results folder (./run_all.sh)")
    traced = json.loads(selection_path.read_text())["traced"]
    if not isinstance(traced, list):
        raise ValueError(f"{results} traced each arm's own known facts (profile full); size from a profile that "
                         "traces one paired set (smoke, standard, review)")
    print(f"{results}: {len(traced)} facts traced in both arms")
    for row in facts_needed(json.loads(comparison_path.read_text()), len(traced)):
        need = "unreachable" if row["facts_needed"] == float("inf") else f"n > {row['facts_needed']:.0f}"
        margin = "n/a" if row["margin"] is None else f"{row['margin']:.4g}"  # as summary.md and report.html
        print(f"{row['claim']} {row['kind'] or '':6} {row['statistic'][:58]:58} value {row['value']:+.4f}  "
              f"CI width {row['ci_width']:.4f}  effect {row['effect']:.4f}  margin {margin}  -> {need}")
    return 0
