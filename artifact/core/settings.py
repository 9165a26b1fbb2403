"""The settings of one experiment run, and the results folder they key.

Every setting that changes a result's numbers is in the key: a changed setting gets a new folder, so old and new
results never mix. The resolved noise value is recorded but not keyed: with `--noise 3sigma` it follows from the
model and the fact file (both keyed) and is checked against the stored value when a run resumes.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from artifact.core.groups import parse_position_policy
from artifact.core.layout import SETTINGS_FILE, ResultsFolderError
from artifact.core.names import ARMS, NOISE_STREAMS

OPTIONAL_KEYS: dict[str, Any] = {"front_end": "", "candidates": 0, "noise_streams": "rome"}


@dataclass(frozen=True)
class RunSettings:
    """What a run computed with; stored as settings.json in the results folder and hashed into its name."""

    arm: str  # "t2t" (text prompt, text answer) or "s2t" (spoken prompt, text answer)
    model: str  # the model's name (LoadedModel.name)
    dtype: str  # the model's weights dtype, e.g. "torch.float32"
    device: str  # device type the traces ran on ("cpu", "cuda"): results are bitwise repeatable per device
    facts_fingerprint: str  # content fingerprint of the whole fact file in use
    noise_spec: str  # as given: "3sigma" (3 x std of the fact file's subject embeddings) or a number
    noise: float  # the resolved noise scale (recorded; checked on resume, not keyed)
    samples: int = 10  # corrupted runs per cell
    window: int = 10  # mlp/attn restoration window
    seed: int = 1  # noise seed
    batch_size: int = 128  # rows per forward pass (results are bitwise repeatable per batch size)
    positions: str = "all"  # "all" or "representatives:K" (see groups.representative_positions)
    front_end: str = ""  # S->T: fingerprint of the speech front end's settings (arms.front_end_key); "" for T->T
    candidates: int = 0  # S->T: only the first N facts of the file were spoken (0: all of them)
    noise_streams: str = "rome"  # where the noise samples come from (TraceConfig.noise_streams; tracing/corruption.py)

    def __post_init__(self) -> None:
        if self.arm not in ARMS:
            raise ValueError(f"arm must be one of {', '.join(ARMS)}; got {self.arm!r}")
        if not (isinstance(self.noise, (int, float)) and math.isfinite(self.noise) and self.noise >= 0):
            raise ValueError(f"noise must be a finite non-negative number; got {self.noise!r}")
        for name in ("samples", "window", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1; got {value!r}")
        if not isinstance(self.seed, int):
            raise ValueError(f"seed must be an integer; got {self.seed!r}")
        parse_position_policy(self.positions)
        if self.noise_streams not in NOISE_STREAMS:
            raise ValueError(f"noise_streams must be one of {', '.join(NOISE_STREAMS)}; got {self.noise_streams!r}")
        if not isinstance(self.candidates, int) or self.candidates < 0:
            raise ValueError(f"candidates must be an integer >= 0 (0: every fact); got {self.candidates!r}")

    def key_dict(self) -> dict[str, Any]:
        """The settings that name the results folder (all but the resolved noise value)."""
        data = asdict(self)
        data.pop("noise")
        for name, unset in OPTIONAL_KEYS.items():  # absent when unset, so older folder names predate these fields
            if data[name] == unset:
                data.pop(name)
        return data

    def key(self) -> str:
        """sha256 of the canonical JSON of `key_dict()`."""
        text = json.dumps(self.key_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def folder_name(self) -> str:
        """`<arm>-<model>-<first 12 hex digits of the key>`, e.g. t2t-embedded-3f2a9c0b71de."""
        model = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.model).strip("_") or "model"
        return f"{self.arm}-{model}-{self.key()[:12]}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunSettings":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"Unknown run settings {sorted(unknown)} in {SETTINGS_FILE}. Known: {sorted(known)}")
        return cls(**data)


def load_settings(run_dir: Path) -> RunSettings:
    """The RunSettings stored in a run folder; a clear error when the folder is not one."""
    path = Path(run_dir) / SETTINGS_FILE
    if not path.is_file():
        children = sorted(p.name for p in Path(run_dir).glob(f"*/{SETTINGS_FILE}")) if Path(run_dir).is_dir() else []
        hint = (
            f" It holds run folders: {', '.join(str(Path(c).parent) for c in children)}; pass one of them."
            if children
            else " Pass the folder `run` printed (e.g. results/t2t-embedded-<key>)."
        )
        raise ResultsFolderError(f"{run_dir} is not a results folder: no {SETTINGS_FILE}.{hint}")
    return RunSettings.from_dict(json.loads(path.read_text()))
