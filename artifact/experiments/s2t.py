"""The S->T arm: facts -> spoken prompts (speech front end) -> noise -> Known-s2t filter -> the generic runner.

The same runner, settings and result files as T->T (`t2t.py`); what differs is where the prompt comes from (the
speech front end's unit tokens in SpiritLM's `[Speech][Hu..]...[Text]` format), where the subject is (the speech
tokens overlapping the subject's aligned time span) and how the corruption scale is chosen (NOISE_CHOICES).
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any, Sequence

import torch

from artifact.experiments.runner import RunSummary, load_known_ids, open_run_dir, parse_jobs, run_items, save_known
from artifact.core.fileio import write_json_atomic
from artifact.core.settings import RunSettings

log = logging.getLogger(__name__)

SPEECH_FILE = "speech.json"
NOISE_CHOICES: dict[str, str] = {
    "3sigma": "3 x std of the embeddings of the corrupted tokens themselves (the subject's speech-unit tokens, pooled "
              "over every spoken prompt of the fact file): ROME's rule applied to what is corrupted (default)",
    "text": "the T->T level: 3 x std of the subject text-token embeddings of the fact file in the same model, so both "
            "arms get the same absolute corruption",
}


def default_front_end() -> Any:
    """The front end of the S->T arm: offline backends, no recognition pass (the offline recogniser's WER on the
    espeak-ng voice is not informative, see REPRODUCE.md), the same settings the embedded speech model was trained
    with, so its cached prompts are reused."""
    from artifact.speech.front_end import FrontEndConfig

    return FrontEndConfig(recognizer="none", validate_alignment=False)


def spoken_items(
    loaded: Any, facts: Sequence[Any], front_end: Any, progress: bool = True
) -> tuple[list[tuple[Any, Any]], dict[Any, str], dict[Any, dict[str, Any]]]:
    """(fact, S->T TracePrompt) pairs; facts the front end cannot speak, align or locate are returned apart with the
    reason; plus each spoken fact's front-end summary row (duration, subject span, token counts)."""
    from tqdm import tqdm

    from artifact.prompts.build import speech_prompt

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


def speech_subject_noise(loaded: Any, prompts: Sequence[Any], factor: float = 3.0) -> float:
    """`factor` x std of the input embeddings of every prompt's subject tokens, pooled (ROME's rule on the corrupted
    tokens themselves; for S->T these are speech-unit tokens)."""
    if not prompts:
        raise ValueError("No spoken prompts: the speech noise level is computed from their subject tokens.")
    embed = loaded.adapter.embed
    with torch.no_grad():
        rows = [embed(torch.tensor(p.input_ids[p.subject_range[0]: p.subject_range[1]], device=loaded.device))
                .double().cpu() for p in prompts]
    return factor * float(torch.cat(rows).std())


def resolve_speech_noise(spec: str | float, loaded: Any, prompts: Sequence[Any], subjects: Sequence[str]) -> float:
    """The S->T noise scale: a number as given, '3sigma' (speech tokens' own, default) or 'text' (NOISE_CHOICES)."""
    from artifact.tracing import calibrate_noise

    if isinstance(spec, (int, float)) and not isinstance(spec, bool):
        value = float(spec)
    else:
        name = str(spec).strip().lower()
        if name == "3sigma":
            return speech_subject_noise(loaded, prompts)
        if name == "text":
            return calibrate_noise(loaded.model, loaded.tokenizer, subjects)
        try:
            value = float(name)
        except ValueError:
            raise ValueError(f"--noise for the S->T arm must be a number, '3sigma' or 'text'; got {spec!r}. "
                             f"{'; '.join(f'{k}: {v}' for k, v in NOISE_CHOICES.items())}") from None
    if not value >= 0:
        raise ValueError(f"--noise must be a non-negative number, '3sigma' or 'text'; got {spec!r}")
    return value


def front_end_key(front_end: Any) -> str:
    """A short fingerprint of the front end's settings (keys the results folder: other prompts, other results)."""
    text = json.dumps(front_end.settings(), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_s2t(
    model: str | Any = "embedded-speech",
    facts: str | Path = "own",
    out: Path = Path("results"),
    limit: int | None = None,
    kinds: Sequence[str] | str = ("hidden", "mlp", "attn"),
    samples: int = 10,
    window: int = 10,
    noise: str | float = "3sigma",
    seed: int = 1,
    batch_size: int = 128,
    positions: str = "all",
    front_end: Any = None,
    candidates: int | None = None,
    ids: Sequence[Any] | None = None,
    known_only: bool = False,
    progress: bool = True,
    device: str | None = None,
    **run_options: Any,
) -> RunSummary:
    """The S->T experiment: speak every fact (or the first `candidates` of the file), keep those the model answers
    from speech (Known-s2t), and trace the first `limit` of them for every kind.

    `model` must have SpiritLM's speech tokens ('embedded-speech', 'spiritlm' or such a folder). Results go to
    `<out>/s2t-<model>-<key>/` with `speech.json` (front-end settings, per-fact summaries, failures); a rerun resumes.
    `ids` keeps only these known ids (e.g. the facts known in both arms); `known_only` stops after the Known-s2t
    filter is stored (known.json), tracing nothing. Extra keyword arguments go to `run_items` (e.g. a shard).
    """
    from artifact.facts import facts_fingerprint, load_facts
    from artifact.known import KNOWN_RULE_S2T, check_known_prompts
    from artifact.models import load_model
    from artifact.speech.front_end import FrontEndConfig, SpeechFrontEnd

    jobs = parse_jobs(kinds)
    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be >= 1; got {limit}")
    if candidates is not None and candidates < 1:
        raise ValueError(f"--candidates must be >= 1; got {candidates}")
    records = load_facts(str(facts) if isinstance(facts, Path) else facts)
    loaded = load_model(model, device=device) if isinstance(model, str) else model
    if not loaded.is_spiritlm:
        raise ValueError(f"Model {loaded.name!r} has no speech tokens; the S->T arm needs 'embedded-speech', "
                         "'spiritlm' or a SpiritLM checkpoint folder.")
    pool = list(records[:candidates]) if candidates is not None else list(records)
    front = SpeechFrontEnd(front_end if isinstance(front_end, FrontEndConfig) else default_front_end()) \
        if not isinstance(front_end, SpeechFrontEnd) else front_end
    items, skipped, summaries = spoken_items(loaded, pool, front, progress)
    for known_id, reason in skipped.items():
        log.warning("fact %s not spoken: %s", known_id, reason)
    if not items:
        raise ValueError(f"None of the {len(pool)} facts could be spoken and located (first reason: "
                         f"{next(iter(skipped.values()), 'none')}).")
    noise_value = resolve_speech_noise(noise, loaded, [p for _, p in items], [f.subject for f in records])
    settings = RunSettings(
        arm="s2t", model=loaded.name, dtype=str(loaded.dtype), device=loaded.device.type,
        facts_fingerprint=facts_fingerprint(records), noise_spec=str(noise), noise=noise_value, samples=samples,
        window=window, seed=seed, batch_size=batch_size, positions=positions,
        front_end=front_end_key(front), candidates=candidates or 0,
    )
    run_dir = open_run_dir(Path(out), settings)
    log.info("results folder %s (noise %s = %.6g)", run_dir, noise, noise_value)
    write_json_atomic(run_dir / SPEECH_FILE, {
        "front_end": front.settings(), "front_end_key": settings.front_end,
        "noise_choice": NOISE_CHOICES.get(str(noise).strip().lower(), "a number given on the command line"),
        "candidates": len(pool), "spoken": len(items), "failures": {str(k): v for k, v in skipped.items()},
        "prompts": {str(k): v for k, v in summaries.items()},
    })
    known_ids = load_known_ids(run_dir)
    if known_ids is None:
        checks = check_known_prompts(loaded, [f for f, _ in items], [p for _, p in items], progress=progress,
                                     desc="known check (S->T)")
        save_known(run_dir, KNOWN_RULE_S2T, "speech", checks)
        known_ids = [c.known_id for c in checks if c.known]
    known = set(map(str, known_ids))
    log.info("%s knows %d of %d spoken facts (S->T)", loaded.name, len(known), len(items))
    if known_only:
        return RunSummary(run_dir)
    if ids is not None:
        known &= set(map(str, ids))
    selected = [(fact, prompt) for fact, prompt in items if str(fact.known_id) in known]
    if limit is not None:
        selected = selected[:limit]
        if len(selected) < limit:
            log.warning("--limit %d asked, but only %d facts are known from speech", limit, len(selected))
    if not selected:
        raise ValueError(f"No facts known from speech ({len(items)} spoken, 0 known): nothing to trace.")
    return run_items(loaded, selected, settings, run_dir, jobs, progress=progress, **run_options)
