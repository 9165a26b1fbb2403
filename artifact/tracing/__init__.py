"""Causal tracing of factual recall (ROME semantics): config, engine, reference, noise, token location."""

from artifact.tracing.config import TraceConfig
from artifact.tracing.engine import Patch, TraceResult, trace_fact
from artifact.tracing.noise import calibrate_noise, subject_embedding_std
from artifact.tracing.tokens import SubjectLocationError, answer_token_id, find_subject_range

__all__ = [
    "Patch",
    "SubjectLocationError",
    "TraceConfig",
    "TraceResult",
    "answer_token_id",
    "calibrate_noise",
    "find_subject_range",
    "subject_embedding_std",
    "trace_fact",
]
