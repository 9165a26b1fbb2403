"""The scales a pipeline run can take, each with its purpose, size and budget; recorded in the manifest.
Torch-free, so the CLI lists them cheaply.

- smoke (both models): 12 facts of our own set across >= 8 relations, 5 noise samples per cell; does the pipeline
  run, a quick look, and an other-seed tier from the run's own noise samples (the exact permutation test of
  verification/noise_band.py can reject at 5% from 4 samples on, smallest p-value 2 / C(8, 4) = 0.029; at 5 it is
  2 / C(10, 5) = 0.008); carry-over patching of hidden and MLP states.
- standard (embedded): 56 facts of our own set across all 15 relations, 5 noise samples; C1-C3 verdicts on the
  embedded models; 96 min on 2 CPU cores without the corruption choice (measured), and 3.7 h more with it (cost
  model; issue 30).
- review (SpiritLM): 150 facts of ROME's known_1000; C1-C3 verdicts on SpiritLM; about 4 h on one H100, 2.8 h of it
  the corruption choice (cost model).
- full (both): every Known fact of known_1000, per arm; the paper's scale; about 34 h on one H100 for SpiritLM, 23 h
  of it the corruption choice.

Profiles that trace a subset take the facts known in both arms by one rule (`selection.py`). Each records where its
noise samples come from (`noise_streams` of its trace settings, tracing/corruption.py): smoke and standard draw
sample s from its own stream (seed, s), so a run's samples are independent draws and verify can judge another seed
from them (issue 28); review and full keep ROME's single stream, as the paper did.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

from artifact.core.names import DIRECTIONS, KINDS, MAPPED_POSITIONS
from artifact.core.trace_settings import TraceSettings, flatten_trace

CARRYOVER_ANALYSES: tuple[str, ...] = ("patching", "knockout", "lens")


@dataclass(frozen=True)
class CarryOverPlan:
    """What the carry-over step measures on the facts known in both arms (issue 18): which analyses, and for
    cross-modal patching which states (kinds), mapped positions and directions. The lens reads both mapped positions;
    knockout blocks last -> subject edges."""

    analyses: tuple[str, ...] = CARRYOVER_ANALYSES
    patch_kinds: tuple[str, ...] = KINDS
    positions: tuple[str, ...] = MAPPED_POSITIONS
    directions: tuple[str, ...] = tuple(DIRECTIONS)  # donor modality -> corrupted (receiving) modality

    def __post_init__(self) -> None:
        for name, given, allowed in (("analyses", self.analyses, CARRYOVER_ANALYSES),
                                     ("patch_kinds", self.patch_kinds, KINDS),
                                     ("positions", self.positions, MAPPED_POSITIONS),
                                     ("directions", self.directions, tuple(DIRECTIONS))):
            unknown = [x for x in given if x not in allowed]
            if unknown or len(set(given)) != len(given):
                raise ValueError(f"carry-over {name} must be distinct values of {', '.join(allowed)}; got {given!r}")


@dataclass(frozen=True)
class CorruptionPlan:
    """The corruption-choice step (issue 30): on the first `facts` facts of the carry-over step's (None: all of
    them), each arm traced again with Gaussian noise at `multiples` x the calibrated sigma (3, ROME's level, is the
    arm's own traces, reused) and, when `replacement`, with symmetric token replacement; every kind the profile
    traces (or only `kinds`). `facts=0` leaves the step out. The implicit-transcription step (one forward per fact)
    always runs on every carry-over fact."""

    facts: int | None = None
    multiples: tuple[float, ...] = (1.0, 3.0, 5.0)  # tracing.config.NOISE_MULTIPLES (kept torch-free here)
    replacement: bool = True
    kinds: tuple[str, ...] | None = None  # None: the profile's kinds (C1 reads mlp, C3 mlp and attn, C2 every kind)

    def __post_init__(self) -> None:
        if self.kinds is not None and (not self.kinds or any(k not in KINDS for k in self.kinds)):
            raise ValueError(f"corruption kinds must be None or values of {', '.join(KINDS)}; got {self.kinds!r}")
        if self.facts is not None and (not isinstance(self.facts, int) or self.facts < 0):
            raise ValueError(f"corruption facts must be None (all) or an integer >= 0; got {self.facts!r}")
        if 3.0 not in self.multiples or any(not m > 0 for m in self.multiples) or \
                len(set(self.multiples)) != len(self.multiples):
            raise ValueError("corruption multiples must be distinct positive numbers including 3 (ROME's level, the "
                             f"baseline); got {self.multiples!r}")

    @property
    def retraced_multiples(self) -> tuple[float, ...]:
        """The noise multiples traced again: all but 3 (ROME's level: the arms' own traces, reused)."""
        return tuple(m for m in self.multiples if m != 3.0)

    def chosen_facts(self, ids: Sequence[str]) -> list[str]:
        """The facts the step traces: the first `facts` of the carry-over step's `ids` (all when None)."""
        return list(ids) if self.facts is None else list(ids)[:self.facts]

    def traced_kinds(self, profile_kinds: Sequence[str]) -> list[str]:
        """The kinds the step traces: the profile's, or those of them the plan names, in the profile's order."""
        return [k for k in profile_kinds if k in (self.kinds or profile_kinds)]


@dataclass(frozen=True)
class Profile:
    """The scale of a pipeline run."""

    name: str
    facts: str  # fact source: 'own', 'known_1000' or a JSON path
    trace: TraceSettings  # samples, window, seed, batch size (the paper's except for the number of samples)
    t2t_positions: str  # 'all' or 'representatives:K'
    s2t_positions: str
    count: int | None  # facts traced in both arms, chosen by the selection rule; None: every known fact of each arm
    candidates: int | None = None  # S->T: only the first N facts of the file are spoken (None: all)
    held_out_share: float = 0.0  # embedded models: share of the traced facts from the speech model's held-out facts
    models: tuple[str, ...] = ("embedded", "spiritlm")  # the models the profile is meant for
    kinds: tuple[str, ...] = KINDS
    carryover: CarryOverPlan = CarryOverPlan()  # the carry-over step (cross-modal patching, knockout, logit lens)
    corruption: CorruptionPlan = CorruptionPlan()  # the corruption-choice step (issue 30)
    purpose: str = ""
    budget: str = ""  # what it should take, and on what
    description: str = ""

    @property
    def paired_only(self) -> bool:
        """Trace only facts known in both arms (the comparison set), rather than each arm's own known facts."""
        return self.count is not None

    def to_dict(self) -> dict[str, Any]:
        """The record in pipeline.json and the manifest: the trace settings' fields at the top level, where they
        always stood (verify's identity check and older results folders read them there)."""
        return flatten_trace(asdict(self))


SMOKE_CORRUPTION_FACTS = 2  # smoke's corruption-choice subset (REPRODUCE.md, "Beyond the paper": minutes it adds)

PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke", facts="own", trace=TraceSettings(samples=5, noise_streams="per_sample"), t2t_positions="all",
        s2t_positions="representatives:1", count=12,
        held_out_share=0.25, carryover=CarryOverPlan(patch_kinds=("hidden", "mlp")),
        corruption=CorruptionPlan(facts=SMOKE_CORRUPTION_FACTS, kinds=("mlp",)),
        purpose="does the whole pipeline run; a first look at both arms",
        budget="about 25 min on 2 quiet CPU cores with the embedded models (measured: 1495 s from an empty model "
               "and speech cache; REPRODUCE.md, 'Hardware and time per step')",
        description="our own fact set, all 264 facts spoken; 12 facts known in both arms traced (round robin over "
                    "relations, a quarter from the speech model's held-out facts where it knows some), all kinds, "
                    "5 noise samples per cell, each from its own stream (verify's exact permutation test judges "
                    "another seed from them: it can reject from 4 on; 10 would take about twice as long: "
                    "representative facts have long spoken prompts), speech traced at one representative per middle/further group; carry-over: "
                    "knockout, logit lens, and cross-modal patching of hidden and MLP states (attention left out "
                    "for time); implicit transcription on every fact; corruption choice on the first 2 facts, MLP "
                    "only (a look at the path, for time: 2 facts give no usable CI)",
    ),
    "standard": Profile(
        name="standard", facts="own", trace=TraceSettings(samples=5, noise_streams="per_sample"), t2t_positions="all",
        s2t_positions="representatives:1", count=56, held_out_share=0.25, models=("embedded",),
        purpose="verdicts on C1-C3 for the embedded models, with intervals narrower than half the effects",
        budget="96 min on 2 CPU cores without the corruption choice (measured 2026-12-07; --no-corruption-choice), "
               "and 3.7 h more for it (cost model: python -m artifact cost --profile standard --model embedded "
               "--device cpu)",
        description="our own fact set; 56 facts known in both arms (round robin over all 15 relations, a quarter "
                    "from the speech model's held-out facts where it knows some), all kinds, 5 noise samples (each from its own stream), speech "
                    "traced at one representative per middle/further group. 56 = the smoke run's C1 intervals scaled "
                    "to half its effect (n > 12 (2 x CI width / effect)^2 = 55; REPRODUCE.md, 'Profiles')",
    ),
    "review": Profile(
        name="review", facts="known_1000", trace=TraceSettings(), t2t_positions="all", s2t_positions="all", count=150,
        models=("spiritlm",), purpose="verdicts on C1-C3 for SpiritLM within a reviewer's afternoon",
        budget="about 4 h on one H100-class GPU: 81 min of tracing, 2.8 h of corruption choice (cost model: python -m "
               "artifact cost --profile review)",
        description="ROME's known_1000; 150 facts known in both arms (round robin over relations), all kinds, "
                    "10 noise samples, every position in both arms",
    ),
    "full": Profile(
        name="full", facts="known_1000", trace=TraceSettings(), t2t_positions="all", s2t_positions="all", count=None,
        purpose="the paper's scale", budget="about 34 h on one H100 for SpiritLM: 11 h of tracing, 23 h of corruption choice (cost model)",
        description="the paper's scale: ROME's known_1000, every Known-t2t fact in T->T and every Known-s2t fact "
                    "in S->T, all kinds, 10 noise samples, all positions",
    ),
}
