"""The experiment's vocabulary, named once: arms, kinds of traced state, jobs, ROME's token groups, metrics, and the
carry-over step's modalities, directions and mapped positions."""

from __future__ import annotations

from typing import Literal, NamedTuple

# Arms: text prompt -> text answer, spoken prompt -> text answer.
ARMS: tuple[str, ...] = ("t2t", "s2t")
ARM_LABELS: dict[str, str] = {"t2t": "T->T", "s2t": "S->T"}

# The state a causal trace restores: block output ("hidden"), MLP output, attention output.
Kind = Literal["hidden", "mlp", "attn"]
KINDS: tuple[Kind, ...] = ("hidden", "mlp", "attn")
KIND_NAMES: dict[str, str] = {"hidden": "hidden state", "mlp": "MLP", "attn": "attention"}  # in prose
SEVERABLE: tuple[Kind, ...] = ("mlp", "attn")  # paths the severed-path experiment can cut (ROME Fig. 3)
SEVERED = "severed"
JOBS: tuple[str, ...] = (*KINDS, SEVERED)  # one result file per fact and job

# Where a trace's noise samples come from (tracing/corruption.py): ROME's one RandomState(seed) stream, or sample s
# from its own stream (seed, s).
NOISE_STREAMS: tuple[str, ...] = ("rome", "per_sample")
# Pipeline steps a run may leave out, with the option that does it: analyses beyond the paper whose results no later
# step reads. The manifest names a left-out step in `left_out`, and verify.py judges its checks SKIP, not FAIL.
OPTIONAL_STEPS: dict[str, str] = {"corruption": "--no-corruption-choice"}

# ROME's six token groups, in the order of every [fact, group, layer] array.
GROUPS: tuple[str, ...] = ("first_subject", "middle_subject", "last_subject", "first_subsequent", "further", "last")
GROUP_LABELS: dict[str, str] = {
    "first_subject": "first subject token",
    "middle_subject": "middle subject tokens",
    "last_subject": "last subject token",
    "first_subsequent": "first subsequent token",
    "further": "further tokens",
    "last": "last token",
}
SUBJECT_GROUPS: tuple[str, ...] = ("first_subject", "middle_subject", "last_subject")
NEAR_SUBJECT_GROUPS: tuple[str, ...] = (*SUBJECT_GROUPS, "first_subsequent")
FURTHER_GROUP = "further"
# Every group but the last token: restoring the last token's state at late layers restores the output whatever the
# mechanism, so grid statistics about the mechanism leave it out.
MECHANISM_GROUPS: tuple[str, ...] = tuple(g for g in GROUPS if g != "last")
ALWAYS_PRESENT_GROUPS: tuple[str, ...] = ("first_subject", "last_subject", "last")  # never empty for a fact
# Where the answer is read ("last" token) in each arm; figures say so.
LAST_TOKEN_MEANING: dict[str, str] = {"t2t": "last = final prompt token", "s2t": "last = [Text] marker"}

# Indirect effect metrics: probability of the answer, and its log (logit-linear).
METRICS: tuple[str, ...] = ("prob", "logprob")
METRIC_LABELS: dict[str, str] = {"prob": "AIE (probability)", "logprob": "AIE (log-probability)"}

# The pipeline's models are registered in `artifact.core.speechtext`; this name is the S->T model whose fact subsets
# (train / held-out) selection.json must record (`core/results.py` reads it without the registry's loaders).
EMBEDDED_SPEECH = "embedded-speech"

# Carry-over (issue 18): each modality runs in its arm's model. A direction names whose clean run donates a state
# (donor) to whose corrupted run (receiver); the mapped positions are the token groups that have one position in both
# a text prompt and its spoken version (last subject token <-> last subject speech token, last token <-> [Text]).
MODALITIES: tuple[str, ...] = ("text", "speech")
MODALITY_ARMS: dict[str, str] = {"text": "t2t", "speech": "s2t"}


class Direction(NamedTuple):
    """Cross-modal patching from the donor modality's clean run into the receiver modality's corrupted run."""

    donor: str
    receiver: str


DIRECTIONS: dict[str, Direction] = {"text_to_speech": Direction("text", "speech"),
                                    "speech_to_text": Direction("speech", "text")}
DIRECTION_LABELS: dict[str, str] = {name: f"{d.donor} -> {d.receiver}" for name, d in DIRECTIONS.items()}
MAPPED_POSITIONS: tuple[str, ...] = ("last_subject", "last")
POSITION_LABELS: dict[str, str] = {"last_subject": "last subject token", "last": "last token / [Text] marker"}
