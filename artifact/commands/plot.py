"""`plot`: figures of an aggregated run (PNG and PDF)."""

from __future__ import annotations

import argparse

from artifact.commands.options import add_command, add_io_options
from artifact.core.layout import AGGREGATE_DIR

EXAMPLE = """example:
  python -m artifact plot --results results/t2t-embedded-3f2a9c0b71de --per-fact 5

Writes to <results>/figures/: aie_heatmap_<kind>_<metric> (token group x layer, ROME Fig. 2 style),
aie_layers_<metric> (AIE by layer at the last subject token and the last token, 95% CI bands, one line per kind),
severed_<metric> (ROME Fig. 3, if the severed run exists) and facts/ (per-fact heatmaps with --per-fact N).
Aggregates first when <results>/aggregate/aie.json is missing."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(
        subparsers, "plot",
        help="figures of an aggregated run",
        description="Figures of a run: AIE heatmaps per kind, AIE-by-layer curves with CI bands, severed paths.",
        epilog=EXAMPLE,
    )
    add_io_options(parser, results="a run folder written by `run`", out="output folder (default <results>/figures)")
    parser.add_argument("--per-fact", type=int, default=0, metavar="N", help="also plot the first N facts' traces")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from artifact.analysis.aggregate import aggregate_run  # lazy: numpy
    from artifact.figures.run import plot_run  # lazy: matplotlib

    if not args.results.is_dir():
        raise FileNotFoundError(f"--results {args.results} does not exist; pass the folder `run` printed.")
    if not (args.results / AGGREGATE_DIR / "aie.json").is_file():
        aggregate_run(args.results)
    written = plot_run(args.results, args.out, per_fact=args.per_fact)
    print(f"{len(written)} files -> {written[0].parent if written else args.results}")
    return 0
