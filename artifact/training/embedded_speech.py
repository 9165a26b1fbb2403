"""Build, train and ship the embedded speech-text model (issue: an embedded model of SpiritLM's kind).

Steps: Known-t2t facts of the embedded model (from known_1000 and the own set) -> a fixed 20% held out ->
each prompt spoken and tokenized by the offline front end -> SmolLM2 extended with SpiritLM's tokens -> the new rows
distilled so that after `[Speech][Hu..]...[Text]` (and after `[Text]` + prompt) the model's next-token distribution
matches the frozen model's after the plain text prompt -> new rows + manifest written to artifact/data/.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import shlex
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

import torch

from artifact.core.fileio import sha256_file, write_atomic, write_json_atomic
from artifact.core.speechtext import SPIRITLM_FORMAT
from artifact.facts import facts_fingerprint, load_facts
from artifact.known import check_known
from artifact.models.embedded_speech import MANIFEST_FILE, NEW_TOKENS, ROWS_FILE, extend_model, extend_tokenizer
from artifact.models.loading import load_embedded
from artifact.prompts.build import speech_prompt, text_prompt_string
from artifact.prompts.tokens import answer_token_id, encode
from artifact.speech.front_end import FrontEndConfig, SpeechFrontEnd
from artifact.training.distill import DistillConfig, Example, accuracy, distill, seed_everything

log = logging.getLogger(__name__)
HELD_OUT_FRACTION = 0.2


def fact_key(source: str, known_id: int) -> str:
    """A fact's id across fact files, e.g. 'known_1000:12' or 'own:3'."""
    return f"{source}:{known_id}"


def split_held_out(keys: Sequence[str], fraction: float = HELD_OUT_FRACTION) -> tuple[list[str], list[str]]:
    """A fixed split: keys ordered by sha256 of the key; the first `fraction` are held out. Independent of order."""
    ranked = sorted(keys, key=lambda key: hashlib.sha256(key.encode()).hexdigest())
    cut = round(len(ranked) * fraction)
    held = set(ranked[:cut])
    return [k for k in keys if k not in held], [k for k in keys if k in held]


def build_examples(
    tokenizer: Any, facts: dict[str, Any], spoken: dict[str, Any], teacher_tokenizer: Any
) -> tuple[dict[str, Example], dict[str, Example]]:
    """Per fact key: the S->T example and the marked T->T example ([Text] + prompt), both against the plain prompt."""
    s2t, t2t = {}, {}
    for key, fact in facts.items():
        teacher_ids = tuple(encode(teacher_tokenizer, fact.prompt))
        answer = answer_token_id(teacher_tokenizer, fact.prompt, fact.attribute)
        spoken_fact = spoken[key]
        prompt = speech_prompt(tokenizer, spoken_fact.units, spoken_fact.subject_tokens, fact.attribute)
        if prompt.target_id != answer:
            raise RuntimeError(f"{key}: the answer token after [Text] differs from the plain prompt's answer token.")
        s2t[key] = Example(key, prompt.input_ids, teacher_ids, answer, "s2t")
        marked = text_prompt_string(fact.prompt, SPIRITLM_FORMAT)
        t2t[key] = Example(key, tuple(encode(tokenizer, marked)), teacher_ids, answer, "t2t")
    return s2t, t2t


def _known_ids(loaded: Any, records: Sequence[Any], cache_file: Path) -> set[int]:
    """Known-t2t ids of `records` for the embedded model, cached per fact-file fingerprint (the check is minutes)."""
    if cache_file.is_file():
        return set(json.loads(cache_file.read_text()))
    ids = sorted(c.known_id for c in check_known(loaded, records) if c.known)
    write_json_atomic(cache_file, ids)
    return set(ids)


def _known_facts(loaded: Any, fact_sources: dict[str, str], work_dir: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """Every source's Known-t2t facts by key ('source:known_id'), and each source's facts fingerprint."""
    facts: dict[str, Any] = {}
    fingerprints = {}
    for source, spec in fact_sources.items():
        records = load_facts(spec)
        fingerprints[source] = facts_fingerprint(records)
        known_ids = _known_ids(loaded, records, work_dir / f"known-{fingerprints[source][:16]}.json")
        facts.update({fact_key(source, f.known_id): f for f in records if f.known_id in known_ids})
        log.info("%s: %d of %d facts known from text", source, len(known_ids), len(records))
    return facts, fingerprints


def _speak(front_end: Any, facts: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Each fact through the speech front end; those it cannot speak are left out, with the reason."""
    from tqdm import tqdm  # lazy: tqdm

    spoken, failures = {}, {}
    for key in tqdm(list(facts), desc="speech front end", unit="prompt"):
        try:
            spoken[key] = front_end.process(facts[key].prompt, facts[key].subject)
        except (RuntimeError, ValueError) as exc:  # e.g. no alignment: the fact cannot be spoken, so it is left out
            failures[key] = str(exc)
            log.warning("%s left out: speech front end failed: %s", key, exc)
    return spoken, failures


def train_embedded_speech(
    fact_sources: dict[str, str],
    out_dir: Path,
    work_dir: Path,
    config: DistillConfig,
    argv: Sequence[str] | None = None,
    max_facts: int | None = None,
    marked_text: bool = False,
) -> dict[str, Any]:
    """Run every step and write `new_rows.safetensors` + `manifest.json` into `out_dir`; returns the manifest.

    `max_facts` keeps only the first N Known-t2t facts (in hash order) for quick experiments; recorded.
    `marked_text` also trains on the T->T prompts with SpiritLM's leading `[Text]` marker (doubling the cost); off by
    default: the T->T arm of the embedded models uses the plain prompt on the frozen model, which is bitwise the same.
    """
    from safetensors.torch import save as safetensors_bytes  # lazy: safetensors

    started = time.time()
    seed_everything(config.seed)
    loaded = load_embedded(device="cpu")
    facts, fingerprints = _known_facts(loaded, fact_sources, work_dir)
    front_end = SpeechFrontEnd(FrontEndConfig.offline("embedded"))
    spoken, front_end_failures = _speak(front_end, facts)
    keys = [key for key in facts if key in spoken]
    if max_facts is not None:
        keys = sorted(keys, key=lambda key: hashlib.sha256(key.encode()).hexdigest())[:max_facts]
    train_keys, held_keys = split_held_out(keys)
    teacher_tokenizer = loaded.tokenizer

    tokenizer = copy.deepcopy(teacher_tokenizer)
    extend_tokenizer(tokenizer)
    first_new = extend_model(loaded.model, tokenizer)
    s2t, t2t = build_examples(tokenizer, {key: facts[key] for key in keys}, spoken, teacher_tokenizer)
    pad_id = int(tokenizer.convert_tokens_to_ids("[Text]"))  # never read: right padding with an attention mask
    train = [s2t[k] for k in train_keys] + ([t2t[k] for k in train_keys] if marked_text else [])
    evaluate = {
        "s2t_train": [s2t[k] for k in train_keys],
        "s2t_held_out": [s2t[k] for k in held_keys],
    }
    state = distill(loaded.model, first_new, train, evaluate, config, pad_id, work_dir,
                    progress=lambda line: log.info("epoch %s", line))
    results = {name: accuracy(loaded.model, examples, pad_id) for name, examples in {
        "s2t_train": [s2t[k] for k in train_keys],
        "s2t_held_out": [s2t[k] for k in held_keys],
        "t2t_marked_train": [t2t[k] for k in train_keys],
        "t2t_marked_held_out": [t2t[k] for k in held_keys],
    }.items()}
    rows_path = out_dir / ROWS_FILE
    rows = {"new_rows": loaded.model.get_input_embeddings().weight[first_new:].detach().contiguous()}
    write_atomic(rows_path, lambda handle: handle.write(safetensors_bytes(rows)))
    manifest = {
        "description": "SmolLM2-135M-Instruct (embedded) + SpiritLM's tokens; only the new embedding rows trained",
        "rows_file": ROWS_FILE,
        "rows_sha256": sha256_file(rows_path),
        "new_tokens": len(NEW_TOKENS),
        "first_new_id": first_new,
        "command": " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv)),
        "distill_config": asdict(config),
        "front_end": front_end.settings(),
        "fact_sources": fact_sources,
        "facts_fingerprints": fingerprints,
        "known_t2t_facts": len(facts),
        "max_facts": max_facts,
        "marked_text_examples": marked_text,
        "front_end_failures": front_end_failures,
        "train_facts": train_keys,
        "held_out_facts": held_keys,
        "accuracy": results,
        "accuracy_note": "T->T accuracy of the plain frozen model is 1.0 on all these facts by selection (Known-t2t)",
        "history": state.history,
        "torch": torch.__version__,
        "train_seconds": round(time.time() - started, 1),
    }
    write_json_atomic(out_dir / MANIFEST_FILE, manifest)
    return manifest
