"""The two arms as data: T->T and S->T differ only in where the prompt comes from, how the noise level is set and
which Known rule applies (`Arm`); facts, settings, the Known filter's file, selection and the runner are shared.

    prepared = prepare_arm("s2t", "embedded-speech", ArmRequest(facts="own", candidates=120))
    prepared.known_ids                                 # the Known filter, computed once and stored in known.json
    trace_arm(prepared, ids=both, limit=12)            # one result file per fact and job, resumable

`prepare_arm` does the work that does not trace (load the facts and model, build every prompt, calibrate the noise,
open the settings-keyed run folder, run or reload the Known filter); `trace_arm` traces a selection of the known
facts. The pipeline prepares each arm once and traces it later; `run_arm` does both for the `run` command.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from artifact.core.fileio import write_json_atomic
from artifact.core.layout import SPEECH_FILE
from artifact.core.names import KINDS
from artifact.core.settings import RunSettings
from artifact.experiments.runner import RunSummary, load_known_ids, open_run_dir, parse_jobs, run_items, save_known
from artifact.experiments.sharding import Shard

log = logging.getLogger(__name__)

NOISE_CHOICES: dict[str, dict[str, str]] = {
    "t2t": {"3sigma": "3 x std of the subject-token embeddings of every record of the fact file (ROME's rule)"},
    "s2t": {
        "3sigma": "3 x std of the embeddings of the corrupted tokens themselves (the subject's speech-unit tokens, "
                  "pooled over every spoken prompt of the fact file): ROME's rule applied to what is corrupted "
                  "(default)",
        "text": "the T->T level: 3 x std of the subject text-token embeddings of the fact file in the same model, so "
                "both arms get the same absolute corruption",
    },
}


@dataclass(frozen=True)
class ArmRequest:
    """What to run, for either arm: facts, scale, trace settings, and (S->T) the speech front end."""

    facts: str | Path = "own"  # 'own', 'known_1000' or a JSON path in ROME's schema
    out: Path = Path("results")  # results root; the run folder is <out>/<arm>-<model>-<key>/
    kinds: Sequence[str] = KINDS  # jobs: hidden, mlp, attn (and severed)
    samples: int = 10  # corrupted runs per cell
    window: int = 10  # mlp/attn restoration window
    noise: str | float = "3sigma"  # a number, '3sigma', or (S->T) 'text'
    seed: int = 1  # noise seed
    noise_streams: str = "rome"  # ROME's one noise stream, or one per sample (tracing/corruption.py)
    batch_size: int = 128  # rows per forward pass (results are bitwise repeatable per batch size)
    positions: str = "all"  # 'all' or 'representatives:K'
    candidates: int | None = None  # S->T: speak only the first N facts of the file
    front_end: Any = None  # S->T: a FrontEndConfig or SpeechFrontEnd (default: the offline one)
    progress: bool = True
    device: str | None = None  # where the model loads (default: CUDA if present)

    def __post_init__(self) -> None:
        object.__setattr__(self, "kinds", parse_jobs(self.kinds))
        if self.candidates is not None and self.candidates < 1:
            raise ValueError(f"--candidates must be >= 1; got {self.candidates}")


@dataclass(frozen=True)
class Arm:
    """What makes an arm an arm."""

    name: str  # 't2t' or 's2t'
    default_model: str  # load_model spec when none is given
    modality: str  # of the prompt's content: 'text' or 'speech'
    known_rule: str  # recorded in known.json
    prompts: Callable[[Any, Sequence[Any], ArmRequest], tuple[list, dict, dict]]  # -> (items, skipped, record)
    noise: Callable[[Any, Any, list, Sequence[Any]], float]  # (spec, loaded, items, every fact) -> noise scale
    known: Callable[[Any, Sequence[Any], list, bool], list]  # (loaded, every fact, items, progress) -> checks


@dataclass
class PreparedArm:
    """An arm ready to trace: its prompts, noise, run folder and Known filter."""

    arm: Arm
    loaded: Any  # LoadedModel
    request: ArmRequest
    records: list[Any]  # every fact of the file
    items: list[tuple[Any, Any]]  # (fact, TracePrompt) of every fact with a prompt, in file order
    skipped: dict[Any, str]  # known_id -> why it has no prompt
    settings: RunSettings
    run_dir: Path
    known_ids: list[Any] = field(default_factory=list)

    def select(self, ids: Sequence[Any] | None = None, limit: int | None = None) -> list[tuple[Any, Any]]:
        """The known (fact, prompt) pairs, in file order, optionally only `ids`, at most `limit`."""
        known = set(map(str, self.known_ids))
        if ids is not None:
            known &= set(map(str, ids))
        chosen = [(fact, prompt) for fact, prompt in self.items if str(fact.known_id) in known]
        if limit is not None:
            if len(chosen) < limit:
                log.warning("--limit %d asked, but only %d known facts are traceable (%s)", limit, len(chosen),
                            self.arm.name)
            chosen = chosen[:limit]
        return chosen


# ------------------------------------------------------------------------------------------------------- T->T


def _text_prompts(loaded: Any, facts: Sequence[Any], request: ArmRequest) -> tuple[list, dict, dict]:
    """(fact, T->T TracePrompt) pairs; facts whose subject cannot be located are returned apart with the reason."""
    from artifact.prompts import SubjectLocationError, text_prompt

    items, skipped = [], {}
    for fact in facts:
        try:
            items.append((fact, text_prompt(loaded.tokenizer, fact.prompt, fact.subject, fact.attribute,
                                            loaded.is_spiritlm)))
        except (SubjectLocationError, ValueError) as exc:
            skipped[fact.known_id] = str(exc)
    return items, skipped, {}


def _text_noise(spec: Any, loaded: Any, items: list, records: Sequence[Any]) -> float:
    """A number as given, or '3sigma' = 3 x std of the subject-token embeddings of every record (ROME's rule)."""
    from artifact.tracing import calibrate_noise

    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        return _non_negative(float(spec), spec)
    if str(spec).strip().lower() == "3sigma":
        return calibrate_noise(loaded.model, loaded.tokenizer, [fact.subject for fact in records])
    return _non_negative(_number(spec, "a number or '3sigma'"), spec)


def _text_known(loaded: Any, records: Sequence[Any], items: list, progress: bool) -> list:
    """Known-t2t on every fact of the file (a fact whose subject cannot be located can still be checked)."""
    from artifact.known import check_known

    return check_known(loaded, records, modality="text", progress=progress)


# ------------------------------------------------------------------------------------------------------- S->T


def spoken_items(loaded: Any, facts: Sequence[Any], front_end: Any, progress: bool = True
                 ) -> tuple[list, dict[Any, str], dict[Any, dict[str, Any]]]:
    """(fact, S->T TracePrompt) pairs; facts the front end cannot speak, align or locate are returned apart with the
    reason; plus each spoken fact's front-end summary row (duration, subject span, token counts)."""
    from tqdm import tqdm

    from artifact.prompts import speech_prompt

    items, skipped, summaries = [], {}, {}
    for fact in tqdm(facts, desc="spoken prompts", unit="prompt", disable=not progress):
        try:
            spoken = front_end.process(fact.prompt, fact.subject)
            if not spoken.kept:
                skipped[fact.known_id] = f"dropped by the front end's max_wer (WER {spoken.wer})"
                continue
            prompt = speech_prompt(loaded.tokenizer, spoken.units, spoken.subject_tokens, fact.attribute)
        except (RuntimeError, ValueError) as exc:
            skipped[fact.known_id] = str(exc)
            continue
        items.append((fact, prompt))
        summaries[fact.known_id] = spoken.summary()
    return items, skipped, summaries


def front_end_key(front_end: Any) -> str:
    """A short fingerprint of the front end's settings (keys the results folder: other prompts, other results)."""
    text = json.dumps(front_end.settings(), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _speech_front_end(request: ArmRequest, loaded: Any) -> Any:
    from artifact.speech.front_end import FrontEndConfig, SpeechFrontEnd

    if isinstance(request.front_end, SpeechFrontEnd):
        return request.front_end
    return SpeechFrontEnd(request.front_end if isinstance(request.front_end, FrontEndConfig)
                          else FrontEndConfig.offline())


def _speech_prompts(loaded: Any, facts: Sequence[Any], request: ArmRequest) -> tuple[list, dict, dict]:
    """Speak the first `candidates` facts (all by default) with the request's front end."""
    if not loaded.is_spiritlm:
        raise ValueError(f"Model {loaded.name!r} has no speech tokens; the S->T arm needs 'embedded-speech', "
                         "'spiritlm' or a SpiritLM checkpoint folder.")
    pool = list(facts[: request.candidates]) if request.candidates is not None else list(facts)
    front = _speech_front_end(request, loaded)
    items, skipped, summaries = spoken_items(loaded, pool, front, request.progress)
    for known_id, reason in skipped.items():
        log.warning("fact %s not spoken: %s", known_id, reason)
    if not items:
        raise ValueError(f"None of the {len(pool)} facts could be spoken and located (first reason: "
                         f"{next(iter(skipped.values()), 'none')}).")
    record = {"front_end": front.settings(), "front_end_key": front_end_key(front),
              "counts": {"candidates": len(pool), "spoken": len(items),
                         "failures": {str(k): v for k, v in skipped.items()},
                         "prompts": {str(k): v for k, v in summaries.items()}}}
    return items, skipped, record


def speech_subject_noise(loaded: Any, prompts: Sequence[Any], factor: float = 3.0) -> float:
    """`factor` x std of the input embeddings of every prompt's subject tokens, pooled (ROME's rule on the corrupted
    tokens themselves; for S->T these are speech-unit tokens)."""
    import torch

    if not prompts:
        raise ValueError("No spoken prompts: the speech noise level is computed from their subject tokens.")
    embed = loaded.adapter.embed
    with torch.no_grad():
        rows = [embed(torch.tensor(p.input_ids[p.subject_range[0]: p.subject_range[1]], device=loaded.device))
                .double().cpu() for p in prompts]
    return factor * float(torch.cat(rows).std())


def _speech_noise(spec: Any, loaded: Any, items: list, records: Sequence[Any]) -> float:
    """A number as given, '3sigma' (the speech tokens' own, default) or 'text' (NOISE_CHOICES["s2t"])."""
    from artifact.tracing import calibrate_noise

    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        return _non_negative(float(spec), spec)
    name = str(spec).strip().lower()
    if name == "3sigma":
        return speech_subject_noise(loaded, [prompt for _, prompt in items])
    if name == "text":
        return calibrate_noise(loaded.model, loaded.tokenizer, [fact.subject for fact in records])
    choices = "; ".join(f"{k}: {v}" for k, v in NOISE_CHOICES["s2t"].items())
    return _non_negative(_number(spec, f"a number, '3sigma' or 'text' ({choices})"), spec)


def _speech_known(loaded: Any, records: Sequence[Any], items: list, progress: bool) -> list:
    """Known-s2t on every spoken fact's S->T prompt."""
    from artifact.known import check_known_prompts

    return check_known_prompts(loaded, [f for f, _ in items], [p for _, p in items], progress=progress,
                               desc="known check (S->T)")


def _number(spec: Any, expected: str) -> float:
    try:
        return float(spec)
    except (TypeError, ValueError):
        raise ValueError(f"--noise must be {expected}; got {spec!r}") from None


def _non_negative(value: float, spec: Any) -> float:
    if not value >= 0:
        raise ValueError(f"--noise must be non-negative; got {spec!r}")
    return value


# -------------------------------------------------------------------------------------------------- the arms


def _arms() -> dict[str, Arm]:
    from artifact.known import KNOWN_RULE, KNOWN_RULE_S2T

    return {
        "t2t": Arm("t2t", "embedded", "text", KNOWN_RULE, _text_prompts, _text_noise, _text_known),
        "s2t": Arm("s2t", "embedded-speech", "speech", KNOWN_RULE_S2T, _speech_prompts, _speech_noise, _speech_known),
    }


def prepare_arm(arm: str, model: str | Any | None, request: ArmRequest) -> PreparedArm:
    """Load the facts and the model, build every prompt, set the noise, open the run folder and run (or reload) the
    Known filter. `model` is a load_model spec (None: the arm's default) or a loaded model."""
    from artifact.facts import facts_fingerprint, load_facts
    from artifact.known import batching_rule
    from artifact.models import load_model

    spec = _arms().get(arm)
    if spec is None:
        raise ValueError(f"arm must be 't2t' or 's2t'; got {arm!r}")
    records = load_facts(str(request.facts) if isinstance(request.facts, Path) else request.facts)
    loaded = load_model(model or spec.default_model, device=request.device) if model is None or isinstance(
        model, str) else model
    items, skipped, record = spec.prompts(loaded, records, request)
    if skipped and arm == "t2t":
        log.info("%d facts have no T->T prompt (their subject cannot be located in the tokens; see known.json)",
                 len(skipped))
    noise = spec.noise(request.noise, loaded, items, records)
    extra = {"front_end": record["front_end_key"], "candidates": request.candidates or 0} if arm == "s2t" else {}
    settings = RunSettings(
        arm=arm, model=loaded.name, dtype=str(loaded.dtype), device=loaded.device.type,
        facts_fingerprint=facts_fingerprint(records), noise_spec=str(request.noise), noise=noise,
        samples=request.samples, window=request.window, seed=request.seed, batch_size=request.batch_size,
        noise_streams=request.noise_streams,
        positions=request.positions, **extra)
    run_dir = open_run_dir(Path(request.out), settings)
    log.info("results folder %s (noise %s = %.6g)", run_dir, request.noise, noise)
    if record:  # S->T: what the front end did, beside the results
        noise_choice = NOISE_CHOICES[arm].get(str(request.noise).strip().lower(), "a number given on the command line")
        write_json_atomic(run_dir / SPEECH_FILE, {"front_end": record["front_end"],
                                                  "front_end_key": record["front_end_key"],
                                                  "noise_choice": noise_choice, **record["counts"]})
    known_ids = load_known_ids(run_dir)
    if known_ids is None:
        checks = spec.known(loaded, records, items, request.progress)
        save_known(run_dir, spec.known_rule + batching_rule(loaded.dtype), spec.modality, checks)
        known_ids = [c.known_id for c in checks if c.known]
    what = "facts" if arm == "t2t" else "spoken facts"
    log.info("%s knows %d of %d %s (%s)", loaded.name, len(known_ids), len(records) if arm == "t2t" else len(items),
             what, "T->T" if arm == "t2t" else "S->T")
    return PreparedArm(spec, loaded, request, records, items, skipped, settings, run_dir, list(known_ids))


def trace_arm(prepared: PreparedArm, ids: Sequence[Any] | None = None, limit: int | None = None,
              shard: Shard | None = None) -> RunSummary:
    """Trace the known facts (optionally only `ids`, at most `limit`, only this `shard`) for every requested job."""
    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be >= 1; got {limit}")
    items = prepared.select(ids, limit)
    if not items:
        raise ValueError(f"No known, traceable facts to trace ({len(prepared.records)} facts, "
                         f"{len(prepared.known_ids)} known, arm {prepared.arm.name}).")
    return run_items(prepared.loaded, items, prepared.settings, prepared.run_dir, prepared.request.kinds,
                     progress=prepared.request.progress, shard=shard)


def run_arm(arm: str, model: str | Any | None, request: ArmRequest, limit: int | None = None,
            ids: Sequence[Any] | None = None, shard: Shard | None = None) -> RunSummary:
    """`prepare_arm` then `trace_arm`: the `run` command. Every shard computes the same fact list first, so `limit`
    means the same facts with and without sharding."""
    return trace_arm(prepare_arm(arm, model, request), ids, limit, shard)
