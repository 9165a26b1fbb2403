"""Causal tracing of factual recall (ROME semantics): tensors in, arrays out.

- `config.py`     TraceConfig: the settings of one trace (ROME's defaults)
- `engine.py`     `trace_fact`: picks the fast or the generic path; TraceResult
- `fast.py`       the fast path: layer stepping, each restored run recomputes only what it can change
- `hooks.py`      the generic path: forward hooks, many cells per forward (any adapter-supported model)
- `corruption.py` ROME's noise, and the cells it cannot reach
- `severed.py`    the severed-path trace (ROME Fig. 3)
- `reference.py`  the plain one-forward-per-cell method, the oracle of the tests
- `noise.py`      the noise level: 3 x std of subject-token embeddings
- `flops.py`      matmul FLOP counts (benchmark, cost model)
"""

from artifact.tracing.config import TraceConfig
from artifact.tracing.engine import TraceResult, trace_fact
from artifact.tracing.hooks import Patch
from artifact.tracing.noise import calibrate_noise, subject_embedding_std

__all__ = ["Patch", "TraceConfig", "TraceResult", "calibrate_noise", "subject_embedding_std", "trace_fact"]
