"""The scales a pipeline run can take, each recorded in the manifest. Torch-free: the CLI lists them cheaply."""

from __future__ import annotations

from dataclasses import dataclass

from artifact.core.names import KINDS


@dataclass(frozen=True)
class Profile:
    """The scale of a pipeline run; recorded in the manifest."""

    name: str
    facts: str  # fact source: 'own', 'known_1000' or a JSON path
    samples: int  # corrupted runs per cell
    t2t_positions: str  # 'all' or 'representatives:K'
    s2t_positions: str
    limit: int | None  # facts traced per arm (None: all)
    candidates: int | None  # S->T: only the first N facts of the file are spoken (None: all)
    paired_only: bool  # trace only facts known in both arms (the comparison set) rather than each arm's own set
    kinds: tuple[str, ...] = KINDS
    window: int = 10
    seed: int = 1
    batch_size: int = 128
    description: str = ""


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke", facts="own", samples=10, t2t_positions="all", s2t_positions="representatives:1", limit=12,
        candidates=120, paired_only=True,
        description="our own fact set: the first 120 facts spoken, the first 12 known in both arms traced, all "
                    "kinds, 10 noise samples, speech traced at one representative per middle/further group",
    ),
    "full": Profile(
        name="full", facts="known_1000", samples=10, t2t_positions="all", s2t_positions="all", limit=None,
        candidates=None, paired_only=False,
        description="the paper's scale: ROME's known_1000, every Known-t2t fact in T->T and every Known-s2t fact "
                    "in S->T, all kinds, 10 noise samples, all positions",
    ),
}

DEFAULT_PROFILE = {"embedded": "smoke", "spiritlm": "full"}  # SpiritLM: the claims are only checkable at full scale
