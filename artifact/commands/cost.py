"""`cost`: estimated GPU time of the full paper run, from matmul FLOP counts and an assumed sustained throughput."""

from __future__ import annotations

import argparse

EXAMPLE = "example:\n  python -m artifact cost\n  python -m artifact cost --known-fraction 0.5 --mfu 0.3"

# SpiritLM base 7B = Llama-2-7B shapes with SpiritLM's vocabulary (BRIEF section 2).
SPIRITLM_7B = dict(layers=32, d_model=4096, heads=32, kv_heads=32, head_dim=128, d_mlp=11008, mlp_matrices=3,
                   vocab=32512)
H100_BF16_DENSE_PEAK = 989e12  # FLOP/s, H100 SXM dense bf16 tensor cores (NVIDIA data sheet; no sparsity)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "cost",
        help="estimated time of the full paper run on one H100",
        description="Estimated time of the full paper run (every fact, text and spoken prompts, three kinds, all "
                    "positions) for SpiritLM 7B in bf16 on one H100, from counted matmul FLOPs of the engine's least "
                    "work and an assumed sustained throughput. Prints the arithmetic.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--facts", type=int, default=1209, help="records in known_1000.json (default 1209)")
    parser.add_argument("--known-fraction", type=float, default=1.0,
                        help="fraction of facts the model answers correctly, per modality (only those are traced); "
                             "default 1.0, an upper bound")
    parser.add_argument("--text-tokens", type=int, default=12, help="text prompt length (default 12)")
    parser.add_argument("--text-subject-start", type=int, default=2, help="first subject token, text (BOS, [Text])")
    parser.add_argument("--spoken-tokens", type=int, default=60, help="spoken prompt length (default 60)")
    parser.add_argument("--spoken-subject-start", type=int, default=3, help="first subject token, spoken")
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--window", type=int, default=10)
    parser.add_argument("--mfu", type=float, default=0.4,
                        help="sustained fraction of the H100's dense bf16 peak (989 TFLOP/s); default 0.4")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from artifact.tracing.config import TraceConfig
    from artifact.tracing.flops import ModelShape, least_flops, reference_flops

    if not 0 < args.known_fraction <= 1 or not 0 < args.mfu <= 1:
        raise ValueError("--known-fraction and --mfu must be in (0, 1]")
    shape = ModelShape(**SPIRITLM_7B)
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
            config = TraceConfig(kind=kind, samples=args.samples, window=args.window)
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
