"""Subcommands of `python -m artifact`; each module exposes `register(subparsers)`."""

# Module names under artifact.commands, imported lazily so `--help` stays fast and heavy imports load on use.
COMMANDS: tuple[str, ...] = ("trace", "checkpoints", "known", "speech", "run", "aggregate", "plot",
                             "train_embedded_speech", "cost", "merge", "manifest", "compare", "pipeline", "report")
