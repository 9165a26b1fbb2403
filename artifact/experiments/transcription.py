"""The implicit-transcription step (issue 30): for each fact of the carry-over step, its spoken prompt in the S->T
arm's model, read through the final norm and unembedding at every subject speech position and layer
(`artifact.tracing.transcription.transcription_lens`): P and rank of the subject's *text* tokens (from the T->T
prompt's subject range) over the text-mode vocabulary. Each fact's arrays go to one file, written atomically, so a
killed run resumes fact by fact; the settings are stored beside them and a rerun with others is refused. The
statistics (the transcription depth with its CI, beside the recall effects' depths) are computed from those files by
`artifact.analysis.transcription_document` (verify.py does the same).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from artifact.core.fileio import npz_problem, write_npz_atomic
from artifact.core.layout import TRANSCRIPTION_DIR, transcription_fact_path
from artifact.experiments.stepfiles import open_step_dir
from artifact.known import output_rows, text_mode_banned_ids

log = logging.getLogger(__name__)


def subject_text_ids(text_prompt: Any) -> list[int]:
    """The subject's text tokens: the T->T prompt's tokens in its subject range."""
    b, e = text_prompt.subject_range
    return [int(i) for i in text_prompt.input_ids[b:e]]


def fact_transcription(loaded: Any, prompts: dict[str, Any]) -> dict[str, np.ndarray]:
    """One fact's lens arrays in the speech model `loaded`: prob/rank [position, layer, subject token] at the spoken
    subject's positions, and the fixed-shape curves of `TranscriptionResult.summary` [layer] each."""
    import torch  # lazy: torch

    from artifact.tracing.transcription import transcription_lens  # lazy: torch

    speech = prompts["speech"]
    b, e = speech.subject_range
    result = transcription_lens(loaded.model, loaded.adapter, torch.tensor(speech.input_ids, dtype=torch.long),
                                range(b, e), subject_text_ids(prompts["text"]),
                                text_mode_banned_ids(loaded.tokenizer, output_rows(loaded.model)))
    return {"prob": result.prob, "rank": result.rank, "positions": np.asarray(result.positions, dtype=np.int64),
            "subject_ids": np.asarray(result.subject_ids, dtype=np.int64), **result.summary()}


def run_transcription(loaded: Any, pairs: Sequence[tuple[Any, dict[str, Any]]], settings: dict[str, Any],
                      out: Path, progress: bool = True) -> tuple[list[str], list[str]]:
    """Compute every fact of `pairs` ((fact, {modality: prompt})) that has no file yet in the speech model
    `loaded`; returns (computed, reused) known_ids."""
    from tqdm import tqdm  # lazy: tqdm

    open_step_dir(Path(out) / TRANSCRIPTION_DIR, settings, "implicit-transcription")
    computed, reused, todo = [], [], []
    for fact, prompts in pairs:
        path = transcription_fact_path(out, fact.known_id)
        problem = npz_problem(path) if path.is_file() else "missing"
        if problem not in (None, "missing"):
            log.warning("%s is damaged (%s): computing it again", path, problem)
        if problem is None:
            reused.append(str(fact.known_id))
        else:
            todo.append((fact, prompts))
    for fact, prompts in tqdm(todo, desc="implicit transcription", unit="fact", disable=not progress):
        arrays = fact_transcription(loaded, prompts)
        arrays.update(known_id=np.asarray(str(fact.known_id)), subject=np.asarray(fact.subject))
        write_npz_atomic(transcription_fact_path(out, fact.known_id), arrays)
        computed.append(str(fact.known_id))
    return computed, reused


__all__ = ["fact_transcription", "run_transcription", "subject_text_ids"]
