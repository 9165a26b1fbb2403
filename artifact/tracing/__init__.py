"""Causal tracing of factual recall (ROME semantics): tensors in, arrays out.

- `config.py`     TraceConfig: the settings of one trace (ROME's defaults)
- `engine.py`     `trace_fact`: picks the fast or the generic path; TraceResult
- `fast.py`       the fast path: layer stepping, each restored run recomputes only what it can change
- `hooks.py`      the generic path: forward hooks, many cells per forward (any adapter-supported model)
- `corruption.py` ROME's noise, and the cells it cannot reach
- `severed.py`    the severed-path trace (ROME Fig. 3)
- `reference.py`  the plain one-forward-per-cell method, the oracle of the tests
- `noise.py`      the noise level: 3 x std of subject-token embeddings
- `crossmodal.py` cross-modal activation patching: a donor run's state written into the corrupted prompt
- `knockout.py`   attention knockout: last -> subject edges blocked in a window of layers (Geva et al. 2023)
- `lens.py`       logit lens: P(answer) and rank per layer through the final norm and unembedding
- `transcription.py` implicit-transcription lens: the subject's text tokens at its speech positions
- `pairing.py`    partners for token replacement: same subject length, another answer (torch-free)
- `replacement.py` causal tracing with symmetric token replacement instead of noise; P, log P and logit difference
- `flops.py`      matmul FLOP counts (benchmark, cost model; torch-free)

Names load on first use (PEP 562): `artifact.tracing.flops`, `.config` and `.pairing` import no torch.
"""

from importlib import import_module
from typing import Any

_HOMES = {"TraceConfig": "config", "TraceResult": "engine", "trace_fact": "engine", "Patch": "hooks",
          "calibrate_noise": "noise", "subject_embedding_std": "noise"}
__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(import_module(f"artifact.tracing.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'artifact.tracing' has no attribute {name!r}")
