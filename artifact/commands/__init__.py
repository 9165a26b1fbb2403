"""Subcommands of `python -m artifact`; each module exposes `register(subparsers)`."""

# Module names under artifact.commands, imported lazily so `--help` stays fast and heavy imports load on use.
COMMANDS: tuple[str, ...] = ("trace", "checkpoints", "known", "speech", "run", "aggregate", "plot", "train_speech_lm",
                             "cost", "merge", "manifest", "compare", "pipeline", "report")
