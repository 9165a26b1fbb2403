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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from artifact.core.groups import parse_position_policy
from artifact.core.jsonable import check_known_keys
from artifact.core.layout import SETTINGS_FILE, ResultsFolderError
from artifact.core.names import ARMS
from artifact.core.trace_settings import KEY_OPTIONAL, TraceSettings, flatten_trace, key_optional_defaults


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
    trace: TraceSettings = TraceSettings()  # samples, window, seed, batch size (stored at the top level)
    positions: str = "all"  # "all" or "representatives:K" (see groups.representative_positions)
    # S->T: fingerprint of the speech front end's settings (arms.front_end_key); "" for T->T
    front_end: str = field(default="", metadata=KEY_OPTIONAL)
    # S->T: only the first N facts of the file were spoken (0: all of them)
    candidates: int = field(default=0, metadata=KEY_OPTIONAL)

    def __post_init__(self) -> None:
        if self.arm not in ARMS:
            raise ValueError(f"arm must be one of {', '.join(ARMS)}; got {self.arm!r}")
        if not (isinstance(self.noise, (int, float)) and math.isfinite(self.noise) and self.noise >= 0):
            raise ValueError(f"noise must be a finite non-negative number; got {self.noise!r}")
        if not isinstance(self.trace, TraceSettings):
            raise ValueError(f"trace must be a TraceSettings; got {self.trace!r}")
        parse_position_policy(self.positions)
        if not isinstance(self.candidates, int) or self.candidates < 0:
            raise ValueError(f"candidates must be an integer >= 0 (0: every fact); got {self.candidates!r}")

    def key_dict(self) -> dict[str, Any]:
        """The settings that name the results folder (all but the resolved noise value)."""
        data = self.to_dict()
        data.pop("noise")
        for name, unset in {**key_optional_defaults(RunSettings), **key_optional_defaults(TraceSettings)}.items():
            if data.get(name) == unset:  # absent when unset, so folder names predate these fields
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
        """The settings.json record: the trace settings' fields at the top level, in their old place."""
        return flatten_trace(asdict(self))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunSettings":
        """Inverse of `to_dict` (every settings.json ever written); an unknown key is an error."""
        trace, rest = TraceSettings.take(data)
        check_known_keys(cls, rest, f"run settings in {SETTINGS_FILE}:")
        if "trace" in rest:
            raise ValueError(f"{SETTINGS_FILE} holds a 'trace' entry; its fields stand at the top level instead")
        return cls(trace=trace, **rest)


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
