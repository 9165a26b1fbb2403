"""Refuse speech-model checkpoints whose weight names do not match the model that loads them.

spiritlm loads HuBERT with `load_state_dict(..., strict=False)`: a checkpoint whose names differ from the model's
(e.g. a batch-norm positional convolution where spiritlm's `HubertModel` has weight norm) loads without an error and
leaves those layers at their random initialisation, so the units look plausible and mean nothing. Its quantizer
loads strictly, but torch's error then lists every key in one long line.

`recorded_weight_loads()` wraps the loads instead of copying spiritlm's loader: inside the block every
`torch.nn.Module.load_state_dict` call loads non-strictly and records the missing and unexpected keys torch reports;
`check_weight_names` turns any mismatch into one error naming the file, a few of each kind of key and their counts.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

SHOWN_KEYS = 4  # keys of each kind named in the error; the counts say how many there are


@dataclass(frozen=True)
class WeightLoad:
    """One `load_state_dict` call: the module class that loaded, and the names torch could not pair."""

    module: str  # class name of the module whose load_state_dict was called (e.g. HubertModel, Sequential)
    missing: tuple[str, ...]  # weights of the model absent from the checkpoint (they stay random)
    unexpected: tuple[str, ...]  # weights of the checkpoint the model has no place for (they are dropped)


@contextlib.contextmanager
def recorded_weight_loads() -> Iterator[list[WeightLoad]]:
    """Within the block, every `torch.nn.Module.load_state_dict` call loads with strict=False and appends a
    `WeightLoad` to the yielded list, in call order; the method is restored on exit (single-threaded use)."""
    import torch  # lazy: torch

    original = torch.nn.Module.load_state_dict
    records: list[WeightLoad] = []

    def load(module: torch.nn.Module, state_dict, strict: bool = True, assign: bool = False):  # noqa: ANN001
        result = original(module, state_dict, strict=False, assign=assign)
        records.append(WeightLoad(type(module).__name__, tuple(result.missing_keys), tuple(result.unexpected_keys)))
        return result

    torch.nn.Module.load_state_dict = load  # type: ignore[method-assign]
    try:
        yield records
    finally:
        torch.nn.Module.load_state_dict = original  # type: ignore[method-assign]


def _some(keys: Sequence[str]) -> str:
    shown = ", ".join(keys[:SHOWN_KEYS])
    return shown + (f", ... ({len(keys) - SHOWN_KEYS} more)" if len(keys) > SHOWN_KEYS else "")


def check_weight_names(load: WeightLoad, path: Path, expected: str) -> None:
    """Raise ValueError when `load` left any weight unpaired, naming `path`, up to SHOWN_KEYS missing and unexpected
    keys with their counts, and `expected` (what the file should be)."""
    if not load.missing and not load.unexpected:
        return
    parts = []
    if load.missing:
        parts.append(f"{len(load.missing)} weight(s) of spiritlm's {load.module} are missing from the file "
                     f"({_some(load.missing)})")
    if load.unexpected:
        parts.append(f"{len(load.unexpected)} weight(s) of the file are unexpected ({_some(load.unexpected)})")
    raise ValueError(f"{path} does not match the model spiritlm builds from it: {'; '.join(parts)}. spiritlm would "
                     "leave the missing layers at their random initialisation and the units would be meaningless. "
                     f"Use {expected}.")
