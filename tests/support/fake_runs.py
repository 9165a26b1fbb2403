"""Run folders in the runner's exact file format with synthetic per-fact traces (no model): for the comparison's and
verify's tests, which need real trace files but not real forwards."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from artifact.core.fileio import write_npz_atomic
from artifact.core.layout import result_path
from artifact.core.settings import RunSettings
from artifact.core.trace_settings import TraceSettings
from artifact.experiments.runner import open_run_dir

L = 12  # layers of the synthetic runs


def settings(arm: str, fingerprint: str = "f" * 64, positions: str = "all") -> RunSettings:
    return RunSettings(arm=arm, model="tiny", dtype="torch.float32", device="cpu", facts_fingerprint=fingerprint,
                       noise_spec="0.1", noise=0.1, trace=TraceSettings(samples=2, window=2),
                       positions=positions)


def fake_run(root: Path, arm: str, ids, seed: int, strength: float, **kw) -> Path:
    """A run folder with one npz per fact and kind (mlp, attn), in the runner's format."""
    rng = np.random.default_rng(seed)
    run_dir = open_run_dir(root, settings(arm, **kw))
    for known_id in ids:
        n_tok = int(rng.integers(7, 12)) if arm == "t2t" else int(rng.integers(14, 20))
        b = 1
        e = b + int(rng.integers(1, 4 if arm == "t2t" else 8))
        last = n_tok - 1
        for kind in ("mlp", "attn"):
            low = 0.05
            scores = low + rng.normal(0, 0.01, (n_tok, L))
            scores[e - 1, 3:6] += strength
            write_npz_atomic(result_path(run_dir, kind, known_id), {
                "known_id": np.asarray(known_id), "scores": scores, "logprobs": np.log(np.clip(scores, 1e-6, 1)),
                "low_score": np.float64(low), "high_score": np.float64(0.6), "low_logprob": np.float64(np.log(low)),
                "high_logprob": np.float64(np.log(0.6)), "subject_range": np.asarray([b, e], dtype=np.int64),
                "last_position": np.int64(last), "positions": np.arange(n_tok)})
    return run_dir
