"""The carry-over step (issue 18): for each fact known in both arms, measure directly whether recall carries over
from text to speech, with the engine's three analyses, each modality in its own arm's model:

- cross-modal patching: the clean run of one modality donates its state (hidden, MLP or attention output) at a mapped
  position to the corrupted run of the other modality (`artifact.tracing.crossmodal`);
- attention knockout: last -> subject edges blocked in a window of layers, per modality (`artifact.tracing.knockout`);
- logit lens at the mapped positions, per modality (`artifact.tracing.lens`).

Positions map by token group: the last subject token <-> the last subject speech token, the last text token <-> the
`[Text]` marker. A state moves between the two arms' models, which must share one transformer (`check_shared`): for
SpiritLM they are one model; the embedded speech model is the text model plus new embedding rows (its training
changes nothing else), so its blocks are the text model's, bit for bit, while each arm keeps its own vocabulary for
P(answer). Each fact's numbers go to one file, written atomically, so a killed run resumes fact by fact; the settings
are stored beside them and a rerun with others is refused. The statistics over facts, carryover.json and the
summaries are computed from those files by `artifact.analysis.carryover_document` (verify.py does the same).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from artifact.core.fileio import npz_problem, write_npz_atomic
from artifact.core.layout import CARRYOVER_DIR, carryover_fact_path
from artifact.core.names import DIRECTIONS, MAPPED_POSITIONS, MODALITIES
from artifact.core.trace_settings import TraceSettings, flatten_trace
from artifact.experiments.profiles import CarryOverPlan
from artifact.experiments.stepfiles import open_step_dir
from artifact.known import output_rows, text_mode_banned_ids
from artifact.tracing.config import TraceConfig

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class CarryOverSettings:
    """Everything the carry-over numbers depend on; stored as carryover/settings.json."""

    models: dict[str, str]  # modality -> the arm's model that runs it (text: T->T's, speech: S->T's)
    text_noise: float  # the T->T arm's corruption level (text subject tokens)
    speech_noise: float  # the S->T arm's (speech subject tokens)
    trace: TraceSettings  # the profile's; its window is also the knockout window (stored at the top level)
    plan: CarryOverPlan

    def to_dict(self) -> dict[str, Any]:
        """The carryover/settings.json record: the trace settings' fields at the top level, in their old place."""
        return json.loads(json.dumps(flatten_trace(asdict(self))))

    def noise(self, modality: str) -> float:
        return self.text_noise if modality == "text" else self.speech_noise


def mapped_positions(prompt: Any) -> dict[str, int]:
    """The positions of the mapped token groups (MAPPED_POSITIONS, in that order) in one prompt: its last subject
    token and its last token."""
    where = {"last_subject": int(prompt.subject_range[1]) - 1, "last": int(prompt.last_position)}
    return {name: where[name] for name in MAPPED_POSITIONS}


def check_shared(text_model: Any, speech_model: Any) -> None:
    """Cross-modal patching writes one model's states into the other's run: both must share every transformer
    weight (the same model, or one that only adds vocabulary rows). Raises ValueError naming the first difference."""
    import torch  # lazy: torch

    if text_model is speech_model:
        return
    speech = dict(speech_model.model.named_parameters())
    for name, weight in text_model.model.named_parameters():
        other = speech.get(name)
        if other is None or other.shape[1:] != weight.shape[1:] or other.shape[0] < weight.shape[0] or \
                not torch.equal(other[: weight.shape[0]], weight):
            raise ValueError(f"{text_model.name} and {speech_model.name} differ in {name}: cross-modal patching "
                             "needs one transformer for both modalities (the same model, or the text model with "
                             "added vocabulary rows only)")


def fact_carryover(models: dict[str, Any], prompts: dict[str, Any], settings: CarryOverSettings
                   ) -> dict[str, np.ndarray]:
    """One fact's carry-over arrays from its text and speech prompts, each run in its arm's model (`models` and
    `prompts` keyed by modality; the models checked by `check_shared`):
    patch_prob/patch_logprob [direction, kind, position, layer], the receiving prompt's corrupted (low_*) and clean
    (high_*) scores [direction], and where every receiver ran on the fast path the per-noise-sample values
    patch_prob_per_sample/patch_logprob_per_sample [direction, kind, position, layer, sample] and
    low_prob_per_sample/low_logprob_per_sample [direction, sample] (their means are the arrays above), knockout_clean [modality] and knockout_prob [modality, layer], lens_prob and lens_rank
    [modality, position, layer]. Plans without an analysis get empty arrays for it."""
    import torch  # lazy: torch

    from artifact.tracing.knockout import knockout  # lazy: torch
    from artifact.tracing.lens import logit_lens  # lazy: torch

    plan = settings.plan
    L = models["speech"].adapter.num_layers
    ids = {m: torch.tensor(prompts[m].input_ids, dtype=torch.long) for m in MODALITIES}
    where = {m: mapped_positions(prompts[m]) for m in MODALITIES}
    D, K, P = len(plan.directions), len(plan.patch_kinds), len(plan.positions)
    patching = "patching" in plan.analyses
    out: dict[str, np.ndarray] = {
        "patch_prob": np.full((D, K, P, L) if patching else (0, K, P, L), np.nan),
        "patch_logprob": np.full((D, K, P, L) if patching else (0, K, P, L), np.nan),
        **{f"{level}_{metric}": np.full(D if patching else 0, np.nan)
           for level in ("low", "high") for metric in ("prob", "logprob")},
    }
    if patching:
        _patching(models, prompts, ids, where, settings, out)
    knock = "knockout" in plan.analyses
    out["knockout_clean"] = np.full(len(MODALITIES) if knock else 0, np.nan)
    out["knockout_prob"] = np.full((len(MODALITIES) if knock else 0, L), np.nan)
    lens = "lens" in plan.analyses
    out["lens_prob"] = np.full((len(MODALITIES) if lens else 0, P, L), np.nan)
    out["lens_rank"] = np.full((len(MODALITIES) if lens else 0, P, L), -1, dtype=np.int64)
    for m, modality in enumerate(MODALITIES):
        prompt, model, adapter = prompts[modality], models[modality].model, models[modality].adapter
        if knock:
            b, e = prompt.subject_range
            out["knockout_clean"][m], out["knockout_prob"][m] = knockout(
                model, adapter, ids[modality], prompt.target_id, range(b, e), window=settings.trace.window)
        if lens:
            result = logit_lens(model, adapter, ids[modality], prompt.target_id,
                                [where[modality][p] for p in plan.positions],
                                text_mode_banned_ids(models[modality].tokenizer, output_rows(model)))
            out["lens_prob"][m], out["lens_rank"][m] = result.prob, result.rank
    return out


def _patching(models: dict[str, Any], prompts: dict[str, Any], ids: dict[str, Any], where: dict[str, dict[str, int]],
              settings: CarryOverSettings, out: dict[str, np.ndarray]) -> None:
    """Fill out's patch_* and low/high arrays. Each modality's clean and corrupted runs are cached once (the engine's
    fast path) in its arm's model: the corrupted run receives every patch, the clean run donates to the other
    modality. Families without a layer stepper take the hook path (one clean forward per donor state, full forwards
    per patch)."""
    from artifact.tracing.corruption import sample_mean  # lazy: torch (artifact.tracing loads the engine)
    from artifact.tracing.crossmodal import cross_patch, donor_states, patch_receiver_samples, receiver  # lazy: torch
    from artifact.tracing.hooks import prepare_context  # lazy: torch

    plan = settings.plan

    def config(modality: str, kind: str = "hidden") -> TraceConfig:
        return TraceConfig.of(settings.trace, kind=kind, noise=settings.noise(modality))

    tracers = {m: receiver(models[m].model, models[m].adapter, ids[m], tuple(prompts[m].subject_range),
                           prompts[m].target_id, config(m)) for m in MODALITIES}
    per_sample = all(tracer is not None for tracer in tracers.values())
    if per_sample:
        D, K, P, L = out["patch_prob"].shape
        for metric in ("prob", "logprob"):
            out[f"patch_{metric}_per_sample"] = np.full((D, K, P, L, settings.trace.samples), np.nan)
            out[f"low_{metric}_per_sample"] = np.full((D, settings.trace.samples), np.nan)
    for d, direction in enumerate(plan.directions):
        donor, into = DIRECTIONS[direction]
        r, tracer = prompts[into], tracers[into]
        model, adapter = models[into].model, models[into].adapter
        if tracer is not None:
            high, low = tracer.cache.high, tracer.cache.low
            if per_sample:
                out["low_prob_per_sample"][d], out["low_logprob_per_sample"][d] = tracer.cache.low_samples
        else:
            _, high, low = prepare_context(model, adapter, ids[into], tuple(r.subject_range), r.target_id,
                                           config(into))
        out["high_prob"][d], out["high_logprob"][d] = high
        out["low_prob"][d], out["low_logprob"][d] = low
        for k, kind in enumerate(plan.patch_kinds):
            for p, position in enumerate(plan.positions):
                source, target = where[donor][position], where[into][position]
                if per_sample:
                    states = tracers[donor].cache.clean[kind][:, source]
                    values = patch_receiver_samples(tracer, target, states, config(into, kind))  # [2, L, S]
                    out["patch_prob_per_sample"][d, k, p] = values[0]
                    out["patch_logprob_per_sample"][d, k, p] = values[1]
                    means = sample_mean(np.moveaxis(values, 2, 0))
                    result = (means[0], means[1])
                else:
                    states = donor_states(models[donor].model, models[donor].adapter, ids[donor], source, kind)
                    result = cross_patch(model, adapter, ids[into], tuple(r.subject_range), r.target_id, target,
                                         states, config(into, kind))
                out["patch_prob"][d, k, p], out["patch_logprob"][d, k, p] = result


def _identity_arrays(fact: Any, prompts: dict[str, Any]) -> dict[str, np.ndarray]:
    """The fact and both prompts' positions beside the numbers, so each file explains itself."""
    arrays: dict[str, np.ndarray] = {"known_id": np.asarray(str(fact.known_id)), "subject": np.asarray(fact.subject),
                                     "attribute": np.asarray(fact.attribute)}
    for modality in MODALITIES:
        prompt = prompts[modality]
        arrays[f"{modality}_input_ids"] = np.asarray(prompt.input_ids, dtype=np.int64)
        arrays[f"{modality}_subject_range"] = np.asarray(prompt.subject_range, dtype=np.int64)
        arrays[f"{modality}_target_id"] = np.int64(prompt.target_id)
        arrays[f"{modality}_positions"] = np.asarray(list(mapped_positions(prompt).values()), dtype=np.int64)
    return arrays


def open_carryover_dir(out: Path, settings: CarryOverSettings) -> Path:
    """carryover/ with its settings.json written, or checked against a rerun's (finished files are reused, so
    results of other settings must never be taken for these): `stepfiles.open_step_dir`."""
    return open_step_dir(Path(out) / CARRYOVER_DIR, settings.to_dict(), "carry-over")


def run_carryover(models: dict[str, Any], pairs: Sequence[tuple[Any, dict[str, Any]]], settings: CarryOverSettings,
                  out: Path, progress: bool = True) -> tuple[list[str], list[str]]:
    """Compute every fact of `pairs` ((fact, {modality: prompt})) that has no file yet; returns (computed, reused)
    known_ids. A killed run loses at most the fact in progress."""
    from tqdm import tqdm  # lazy: tqdm

    check_shared(models["text"], models["speech"])
    open_carryover_dir(out, settings)
    computed, reused = [], []
    todo = []
    for fact, prompts in pairs:
        path = carryover_fact_path(out, fact.known_id)
        problem = npz_problem(path) if path.is_file() else "missing"
        if problem not in (None, "missing"):
            log.warning("%s is damaged (%s): computing it again", path, problem)
        (reused if problem is None else todo).append((fact, prompts))
    reused = [str(f.known_id) for f, _ in reused]
    for fact, prompts in tqdm(todo, desc="carry-over", unit="fact", disable=not progress):
        arrays = fact_carryover(models, prompts, settings)
        arrays.update(_identity_arrays(fact, prompts))
        write_npz_atomic(carryover_fact_path(out, fact.known_id), arrays)
        computed.append(str(fact.known_id))
    return computed, reused
