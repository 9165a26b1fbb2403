"""Command-line pieces that several commands share, each written once: a subcommand's parser, the folder options
(--results, --out, --no-progress), the trace settings (`TraceSettings`, with its defaults) and the argparse types."""

from __future__ import annotations

import argparse
from pathlib import Path

from artifact.core.trace_settings import TraceSettings

_DEFAULTS = TraceSettings()
TRACE_HELP: dict[str, str] = {  # one entry per TraceSettings field
    "samples": f"corrupted runs per cell (default {_DEFAULTS.samples}, as ROME)",
    "window": f"mlp/attn restoration window (default {_DEFAULTS.window}, as ROME)",
    "seed": f"noise seed (default {_DEFAULTS.seed}, as ROME)",
    "batch_size": f"rows per forward pass (default {_DEFAULTS.batch_size}; results are bitwise repeatable per size)",
}


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def add_trace_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup,
                      names: tuple[str, ...] = tuple(TRACE_HELP)) -> None:
    """--samples, --window, --seed, --batch-size (or only `names`), with TraceSettings' defaults."""
    for name in names:
        parser.add_argument("--" + name.replace("_", "-"), type=int if name == "seed" else positive_int,
                            default=getattr(_DEFAULTS, name), help=TRACE_HELP[name])


def trace_settings(args: argparse.Namespace) -> TraceSettings:
    """The TraceSettings of parsed arguments (fields without an option keep their defaults)."""
    return TraceSettings(**{name: getattr(args, name) for name in TRACE_HELP if hasattr(args, name)})


def add_command(subparsers: argparse._SubParsersAction, name: str, **options: object) -> argparse.ArgumentParser:
    """A subcommand's parser, its epilog (the examples) printed as written."""
    return subparsers.add_parser(name, formatter_class=argparse.RawDescriptionHelpFormatter, **options)


def add_io_options(parser: argparse.ArgumentParser, *, results: str | None = None, out: str | None = None,
                   out_default: Path | None = None, no_progress: str | None = None) -> None:
    """The folder options commands share, each added when its help text is given: --results (required), --out (a
    path, `out_default` when not given) and --no-progress."""
    if results is not None:
        parser.add_argument("--results", type=Path, required=True, help=results)
    if out is not None:
        parser.add_argument("--out", type=Path, default=out_default, help=out)
    if no_progress is not None:
        parser.add_argument("--no-progress", action="store_true", help=no_progress)
