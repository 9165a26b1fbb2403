"""`python -m artifact <command>`: the command line of the artifact."""

from __future__ import annotations

import argparse
import errno
import importlib
import logging
import os
import sys

from artifact.commands import COMMANDS
from artifact.core.fileio import DiskFullError, is_disk_full

DEBUG_ENV = "ARTIFACT_DEBUG"  # set to 1 to see the traceback of every error (as --debug does)
# Input and set-up problems: their messages name the problem and the fix, so they print as one line.
KNOWN_ERRORS: tuple[type[BaseException], ...] = (ValueError, LookupError, RuntimeError, OSError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m artifact",
        description="Causal tracing of factual recall from text and speech in speech-text language models.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument("--debug", action="store_true",
                        help=f"show the Python traceback of an error instead of its one-line message (also: "
                             f"{DEBUG_ENV}=1)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"artifact.commands.{name}").register(subparsers)
    return parser


def error_line(exc: BaseException) -> str:
    """One line for a known error: its own message, or for an operating-system error the file, the cause and the
    fix (a full disk, a read-only or unwritable folder, a missing file)."""
    if isinstance(exc, OSError) and not isinstance(exc, DiskFullError):
        where = exc.filename or "a file"
        if is_disk_full(exc):
            return str(DiskFullError(exc.filename or os.getcwd()))
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            return (f"cannot write {where}: {exc.strerror} (a read-only checkout or cache?). Pass --out DIR for "
                    "results and set ARTIFACT_CACHE_DIR to a writable folder for the caches.")
        return f"{where}: {exc.strerror or exc}"
    return str(exc)


def main(argv: list[str] | None = None) -> int:
    """Run one command; a known error becomes one line on stderr and exit code 2 (130 when interrupted). A
    genuine bug still shows its traceback, and --debug (or ARTIFACT_DEBUG=1) shows it for every error."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s")
    debug = args.debug or args.verbose or os.environ.get(DEBUG_ENV, "") not in ("", "0")
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        if debug:
            raise
        print("interrupted: rerun the same command to resume (finished work is kept)", file=sys.stderr)
        return 130
    except KNOWN_ERRORS as exc:
        if debug:
            raise
        print(f"error: {error_line(exc)} [traceback: {DEBUG_ENV}=1]", file=sys.stderr)
        return 2
