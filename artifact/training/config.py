"""The distillation's settings, in a module without torch so the command line can read its defaults quickly."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DistillConfig:
    """Settings of the distillation; stored in the shipped manifest."""

    epochs: int = 9
    batch_size: int = 16
    learning_rate: float = 5e-3
    seed: int = 0
    temperature: float = 1.0
    # Fixed, not "all cores": float reductions (and so Adam's path) depend on the CPU thread count, and the shipped rows
    # are reproduced bitwise only with the same count.
    threads: int = 1

    def __post_init__(self) -> None:
        if (self.epochs < 1 or self.batch_size < 1 or self.threads < 1 or self.learning_rate <= 0
                or self.temperature <= 0):
            raise ValueError(f"Invalid DistillConfig {self}: epochs, batch_size, threads >= 1; learning_rate, "
                             "temperature > 0")
