"""`python -m artifact <command>`: the command line of the artifact."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from artifact.commands import COMMANDS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m artifact",
        description="Causal tracing of factual recall from text and speech in speech-text language models.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"artifact.commands.{name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s")
    try:
        return int(args.func(args) or 0)
    except (ValueError, LookupError, RuntimeError, FileNotFoundError) as exc:
        # Input and set-up problems carry a message that names the fix; print it without a traceback.
        if args.verbose:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
