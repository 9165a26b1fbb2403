"""`aggregate`: AIE per kind, token group and layer with bootstrap CIs over facts (tidy CSV + JSON)."""

from __future__ import annotations

import argparse

from artifact.commands.options import add_command, add_io_options

EXAMPLE = """example:
  python -m artifact aggregate --results results/t2t-embedded-3f2a9c0b71de

Writes <results>/aggregate/aie.csv (columns arm, kind, metric, effect, group, layer, n_facts, aie, ci_low, ci_high,
ci_method), aie.json (the same rows, peaks, settings, bootstrap method), severed.csv (if the severed run exists) and
group_effects.npz (per-fact [fact, group, layer] arrays)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(
        subparsers, "aggregate",
        help="average indirect effects with bootstrap CIs",
        description="Average indirect effects per kind, token group and layer, probability and log-probability, "
                    "with 95% bootstrap (BCa) confidence intervals over facts.",
        epilog=EXAMPLE,
    )
    add_io_options(parser, results="a run folder written by `run`", out="output folder (default <results>/aggregate)")
    parser.add_argument("--resamples", type=int, default=10_000, help="bootstrap resamples (default 10000)")
    parser.add_argument("--bootstrap-seed", type=int, default=0, help="bootstrap seed (default 0)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from artifact.analysis.aggregate import aggregate_run  # lazy: numpy

    if not args.results.is_dir():
        raise FileNotFoundError(f"--results {args.results} does not exist; pass the folder `run` printed.")
    doc = aggregate_run(args.results, args.out, n_resamples=args.resamples, seed=args.bootstrap_seed)
    out = args.out or args.results / "aggregate"
    missing = {k: len(v) for k, v in doc["missing"].items()}
    print(f"facts per kind: {doc['n_facts']}" + (f"; missing results: {missing}" if missing else ""))
    for key, peak in doc["peaks"].items():
        best = peak["overall"]
        print(f"{key:15s} peak AIE {best['aie']:.4f} [{best['ci_low']}, {best['ci_high']}] at {best['group']}, "
              f"layer {best['layer']}")
    print(f"-> {out}/aie.csv, {out}/aie.json")
    return 0
