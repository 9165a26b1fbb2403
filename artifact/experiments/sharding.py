"""Scale-out by sharding: split a run's facts into N disjoint shards, one per process (GPU) or per SLURM array task.

Rule: sort the facts by known_id (numbers numerically, then other ids as text) and give the k-th fact (k = 0, 1, ...)
to shard k mod N. Round-robin over the sorted ids rather than a hash of each id because it balances the work: shard
sizes differ by at most one fact, so N GPUs finish in about 1/N of the time even for 40 facts, where a hash would
leave some shards with twice the facts of others. Sorting makes it independent of the order the facts arrive in.
Every shard must see the same fact list, which holds because the list is a deterministic function of the settings
(fact file, model, Known filter, --limit); each shard's plan file records a fingerprint of the whole list, and
`aggregate` warns when shards disagree.

Processes only write disjoint result files into one folder (or into separate folders joined by `merge`): no
torch.distributed process group is created and none is needed. A result is computed exactly as in a single-process
run with the same batch size (on the same kind of device), so the aggregate is bitwise the same.

Where the shard comes from, first match wins:
  1. `--shard I/N` on the command line (`--shard 0/1` runs everything, ignoring the environment);
  2. the environment: torchrun (`RANK`, `WORLD_SIZE`; `LOCAL_RANK` picks the GPU `cuda:LOCAL_RANK`) and SLURM job
     arrays (`SLURM_ARRAY_TASK_ID`, `SLURM_ARRAY_TASK_COUNT`, `SLURM_ARRAY_TASK_MIN`, `SLURM_ARRAY_TASK_STEP`);
     both together (torchrun inside each array task) give shard task x WORLD_SIZE + RANK of COUNT x WORLD_SIZE;
  3. none: the whole run in one process.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from typing import Any, Mapping, Sequence, TypeVar

T = TypeVar("T")

SHARD_SPEC = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


class ShardError(ValueError):
    """A shard specification (flag or environment) that cannot name a valid shard."""


@dataclass(frozen=True)
class Shard:
    """Shard `index` of `count` (0 <= index < count); `count == 1` is the whole run."""

    index: int
    count: int

    def __post_init__(self) -> None:
        for name in ("index", "count"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ShardError(f"shard {name} must be an integer; got {value!r}")
        if self.count < 1:
            raise ShardError(f"shard count must be >= 1; got {self.count} (write --shard I/N with N >= 1)")
        if not 0 <= self.index < self.count:
            raise ShardError(f"shard index must be in 0..{self.count - 1} for {self.count} shards; got {self.index} "
                             f"(indices start at 0: --shard 0/{self.count} .. --shard {self.count - 1}/{self.count})")

    @classmethod
    def parse(cls, text: str) -> "Shard":
        """'I/N' (e.g. '0/4') -> Shard(I, N)."""
        match = SHARD_SPEC.match(str(text))
        if not match:
            raise ShardError(f"a shard is written I/N, e.g. 0/4 for the first of four; got {text!r}")
        return cls(int(match.group(1)), int(match.group(2)))

    @property
    def whole(self) -> bool:
        """True for the single shard 0/1 (the whole run)."""
        return self.count == 1

    @property
    def name(self) -> str:
        """File-name form, e.g. 'shard-0-of-4'."""
        return f"shard-{self.index}-of-{self.count}"

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def select(self, items: Sequence[T], key=lambda item: item) -> list[T]:
        """This shard's items, in their given order: the k-th of the items sorted by `key(item)` (a known_id) goes
        to shard k mod count."""
        return [items[i] for i in sorted(self.positions(items, key))]

    def positions(self, items: Sequence[T], key=lambda item: item) -> list[int]:
        """Indices into `items` of this shard's items (see `select`)."""
        order = sorted(range(len(items)), key=lambda i: id_sort_key(key(items[i])))
        return [i for k, i in enumerate(order) if k % self.count == self.index]


def id_sort_key(known_id: Any) -> tuple:
    """Total order on known_ids: integers (also '12') numerically first, then the rest as text (ties by text)."""
    try:
        return (0, int(known_id), str(known_id))
    except (TypeError, ValueError):
        return (1, 0, str(known_id))


def ids_fingerprint(known_ids: Sequence[Any]) -> str:
    """sha256 of the sorted ids as text: equal for every shard of one run (order-independent)."""
    text = json.dumps(sorted((str(i) for i in known_ids), key=id_sort_key), separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _env_int(env: Mapping[str, str], name: str) -> int | None:
    value = env.get(name)
    if value is None or value.strip() == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise ShardError(f"environment variable {name}={value!r} is not an integer; unset it or pass --shard I/N") \
            from None


def _torchrun_shard(env: Mapping[str, str]) -> Shard | None:
    world, rank = _env_int(env, "WORLD_SIZE"), _env_int(env, "RANK")
    if world is None and rank is None:
        return None
    if world is None or rank is None:
        raise ShardError("RANK and WORLD_SIZE must be set together (torchrun sets both); "
                         f"found RANK={env.get('RANK')!r}, WORLD_SIZE={env.get('WORLD_SIZE')!r}. Pass --shard I/N.")
    try:
        return Shard(rank, world)
    except ShardError as exc:
        raise ShardError(f"torchrun environment RANK={rank}, WORLD_SIZE={world}: {exc}") from None


def _slurm_shard(env: Mapping[str, str]) -> Shard | None:
    task = _env_int(env, "SLURM_ARRAY_TASK_ID")
    if task is None:
        return None
    count = _env_int(env, "SLURM_ARRAY_TASK_COUNT")
    if count is None:
        raise ShardError(f"SLURM_ARRAY_TASK_ID={task} but SLURM_ARRAY_TASK_COUNT is unset (Slurm sets it for job "
                         "arrays); pass --shard I/N.")
    low = _env_int(env, "SLURM_ARRAY_TASK_MIN") or 0
    step = _env_int(env, "SLURM_ARRAY_TASK_STEP") or 1
    if step < 1 or (task - low) % step:
        raise ShardError(f"SLURM array task {task} is not on the range {low}, {low}+{step}, ... "
                         "Use a contiguous array (e.g. --array=0-3) or pass --shard I/N.")
    index = (task - low) // step
    if not 0 <= index < count:
        raise ShardError(f"SLURM array task {task} (min {low}, step {step}) is shard {index}, outside 0..{count - 1}: "
                         "the array ids are not a contiguous range. Use --array=0-<N-1> or pass --shard I/N.")
    return Shard(index, count)


def shard_from_env(env: Mapping[str, str] | None = None) -> Shard | None:
    """The shard named by torchrun and/or a SLURM job array in `env` (default os.environ); None when neither is
    there or the run is a single shard."""
    env = os.environ if env is None else env
    torchrun, slurm = _torchrun_shard(env), _slurm_shard(env)
    if torchrun and slurm:
        shard = Shard(slurm.index * torchrun.count + torchrun.index, slurm.count * torchrun.count)
    else:
        shard = torchrun or slurm
    return None if shard is None or shard.whole else shard


def resolve_shard(spec: str | Shard | None, env: Mapping[str, str] | None = None) -> Shard | None:
    """The shard to run: an explicit spec ('I/N' or a Shard) wins over the environment; None = the whole run."""
    if spec is None:
        return shard_from_env(env)
    shard = spec if isinstance(spec, Shard) else Shard.parse(spec)
    return None if shard.whole else shard


def device_from_env(env: Mapping[str, str] | None = None) -> str | None:
    """'cuda:LOCAL_RANK' under torchrun when CUDA is available (one GPU per process), else None (the default)."""
    env = os.environ if env is None else env
    local = _env_int(env, "LOCAL_RANK")
    if local is None:
        return None
    import torch  # lazy: torch

    if not torch.cuda.is_available():
        return None
    if local >= torch.cuda.device_count():
        raise ShardError(f"LOCAL_RANK={local} but only {torch.cuda.device_count()} GPU(s) are visible: start torchrun "
                         "with --nproc-per-node at most the number of GPUs.")
    return f"cuda:{local}"


__all__ = ["Shard", "ShardError", "device_from_env", "id_sort_key", "ids_fingerprint", "resolve_shard",
           "shard_from_env"]
