"""`merge`: join the run folders of shards that ran without a shared filesystem (artifact.experiments.merge)."""


from __future__ import annotations

import argparse
import logging
from pathlib import Path

from artifact.experiments.merge import merge_runs

from artifact.commands.options import add_command

EXAMPLE = """examples:
  python -m artifact merge --into results/t2t-embedded-3f2a9c0b71de shard0/t2t-embedded-3f2a9c0b71de \\
      shard1/t2t-embedded-3f2a9c0b71de
  python -m artifact merge --into results/merged shard*/          # a results root holding one run folder is fine
Then: python -m artifact aggregate --results <into>."""
log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(
        subparsers, "merge",
        help="join the run folders of shards into one (clusters without a shared filesystem)",
        description="Copy the result files of shard run folders into one run folder, refusing folders of other "
                    "settings and conflicting duplicate results; then aggregate the merged folder.",
        epilog=EXAMPLE,
    )
    parser.add_argument("--into", type=Path, required=True, help="the merged run folder (created if absent)")
    parser.add_argument("sources", type=Path, nargs="+", metavar="SRC",
                        help="run folders of the shards (or --out roots holding exactly one run folder)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    report = merge_runs(args.into, args.sources)
    results = sum(n for k, n in report.copied.items() if k.startswith("traces"))
    present = sum(n for k, n in report.identical.items() if k.startswith("traces"))
    per_job = ", ".join(f"{k.split('/', 1)[1]} {n}" for k, n in sorted(report.copied.items()) if k.startswith("traces"))
    print(f"merged {len(report.sources)} folder(s) into {report.into}: {results} result files copied"
          f"{f' ({per_job})' if per_job else ''}, {present} duplicates identical or already present, "
          f"{sum(n for k, n in report.copied.items() if not k.startswith('traces'))} plan/known files copied")
    print(f"next: python -m artifact aggregate --results {report.into}")
    return 0
