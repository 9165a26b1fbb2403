"""`manifest`: write or update the run manifest (`manifest.json`) of a results folder."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from artifact.commands.options import add_command, add_io_options

EXAMPLE = (
    "examples:\n"
    "  # environment, code version, fingerprints and settings (keeps the steps already recorded)\n"
    "  python -m artifact manifest --results results/ --model embedded --unit-tokenizer kmeans-logmel \\\n"
    "      --facts own --settings results/t2t-embedded-KEY/settings.json\n"
    "  # one step's wall time, from a shell script (no torch import, fast)\n"
    "  t0=$(date +%s.%N); python -m artifact run ...; python -m artifact manifest --results results/ \\\n"
    "      --step trace_t2t --since \"$t0\""
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(
        subparsers, "manifest",
        help="record the run manifest (code, environment, fingerprints, settings, step times) beside results",
        description="Write DIR/manifest.json: git commit and dirty flag (or the container's build-time commit), "
                    "lock file hashes, Python/torch/CUDA/driver versions, device, dtype and batch size, model and "
                    "unit-tokenizer weight fingerprints, facts fingerprint, every setting, and per-step wall time. "
                    "With --step, only add that step's time (creating a minimal manifest if there is none).",
        epilog=EXAMPLE,
    )
    add_io_options(parser, results="results folder (manifest.json goes there)")
    parser.add_argument("--step", help="record the wall time of this step only")
    timing = parser.add_mutually_exclusive_group()
    timing.add_argument("--seconds", type=float, help="the step's wall time in seconds")
    timing.add_argument("--since", type=float, help="the step's start as Unix seconds (e.g. `date +%%s.%%N`)")
    parser.add_argument("--model", help="model spec to fingerprint: embedded, embedded-speech, spiritlm or a folder")
    parser.add_argument("--unit-tokenizer", help="unit tokenizer to fingerprint: kmeans-logmel or spiritlm")
    facts = parser.add_mutually_exclusive_group()
    facts.add_argument("--facts", help="fact set to fingerprint: known_1000, own or a JSON path")
    facts.add_argument("--facts-fingerprint", help="the facts' content fingerprint, when already known")
    parser.add_argument("--settings", type=Path, action="append", default=[],
                        help="JSON file of settings to record (repeatable; later files win on equal keys)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="one more setting (value parsed as JSON when it parses, else kept as text)")
    parser.add_argument("--dtype", help="dtype of the run (default: the settings' 'dtype')")
    parser.add_argument("--batch-size", type=int, help="batch size of the run (default: the settings' 'batch_size')")
    parser.add_argument("--full-hash", action="store_true",
                        help="full sha256 of large checkpoint files (slow) instead of the quick fingerprint")
    parser.set_defaults(func=run)


def _settings(files: list[Path], pairs: list[str]) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    for path in files:
        data = json.loads(Path(path).read_text())
        if not isinstance(data, dict):
            raise ValueError(f"{path} does not hold a JSON object of settings.")
        settings.update(data)
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects KEY=VALUE, not {pair!r}.")
        try:
            settings[key] = json.loads(value)
        except ValueError:
            settings[key] = value
    return settings


def run(args: argparse.Namespace) -> int:
    from artifact import manifest  # lazy: fast --help

    if args.step is not None:
        if args.seconds is None and args.since is None:
            raise ValueError("--step needs --seconds S or --since UNIX_SECONDS.")
        seconds = args.seconds if args.seconds is not None else time.time() - args.since
        path = manifest.record_step(args.results, args.step, seconds)
        print(f"{path}: step {args.step} = {seconds:.1f} s")
        return 0
    if args.seconds is not None or args.since is not None:
        raise ValueError("--seconds/--since go with --step NAME.")
    full = True if args.full_hash else None
    facts_fingerprint = args.facts_fingerprint
    if args.facts:
        from artifact.facts import facts_fingerprint as fingerprint  # lazy: fast --help
        from artifact.facts import load_facts  # lazy: fast --help

        facts_fingerprint = fingerprint(load_facts(args.facts))
    data = manifest.collect_manifest(
        settings=_settings(args.settings, args.set),
        model_fingerprints=manifest.model_fingerprints(args.model, full) if args.model else None,
        facts_fingerprint=facts_fingerprint,
        dtype=args.dtype,
        batch_size=args.batch_size,
        unit_tokenizer=manifest.unit_tokenizer_fingerprint(args.unit_tokenizer, full) if args.unit_tokenizer else None,
    )
    path = manifest.write_manifest(args.results, data)
    code = data["code"]
    print(f"wrote {path} (commit {code['commit'][:12]}, dirty {code['dirty']}; device "
          f"{data['environment']['device_name']})")
    return 0
