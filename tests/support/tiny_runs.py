"""Tiny runs for the runner's tests: stand-ins for what the runner reads of a fact and a loaded model, and a tiny
seeded Llama saved with the real SmolLM2 tokenizer together with facts built from its own greedy predictions (so the
Known filter keeps some facts and drops others)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from artifact.core.settings import RunSettings
from artifact.models import ModelAdapter
from artifact.prompts.build import TracePrompt


@dataclass(frozen=True)
class StandInFact:
    """Stand-in for artifact.facts.Fact (the runner only reads these fields)."""

    known_id: int
    subject: str
    attribute: str
    prompt: str
    relation_id: str = "P0"


class IdTokenizer:
    """Decodes token ids as 't<id>' (the runner stores decoded labels beside each result)."""

    def decode(self, ids):
        return " ".join(f"t{i}" for i in ids)


@dataclass
class TinyLoaded:
    """Stand-in for artifact.models.LoadedModel."""

    name: str
    model: torch.nn.Module
    tokenizer: object
    adapter: ModelAdapter


def tiny_model_with_known_facts(folder: Path, prompts: Sequence[tuple[str, str, str]], seed: int, layers: int,
                                max_known: int) -> tuple[Path, Path, int]:
    """Save a tiny seeded Llama (SmolLM2's tokenizer) to `folder` and a fact file beside it: each (subject, template,
    relation) becomes a fact whose attribute is the model's own greedy next word when that word continues the prompt
    as a word of its own (a known fact, at most `max_known`), else 'Nowhere'. Returns (folder, facts file, known)."""
    import transformers
    from transformers import AutoTokenizer

    from artifact.models.loading import embedded_model_dir
    from artifact.prompts import answer_token_id

    tokenizer = AutoTokenizer.from_pretrained(embedded_model_dir())
    config = transformers.LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                      num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                                      max_position_embeddings=128, initializer_range=0.3)
    torch.manual_seed(seed)
    model = transformers.LlamaForCausalLM(config).eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    records, known = [], 0
    for i, (subject, template, relation) in enumerate(prompts):
        prompt = template.format(subject)
        with torch.no_grad():
            predicted = int(model(torch.tensor([tokenizer(prompt)["input_ids"]])).logits[0, -1].argmax())
        attribute = tokenizer.decode([predicted]).strip()
        try:  # a word piece that continues the prompt as a word of its own (not a bare space first)
            answers = attribute.isalpha() and answer_token_id(tokenizer, prompt, attribute) == predicted
        except ValueError:
            answers = False
        if answers and known < max_known:
            known += 1
        else:
            attribute = "Nowhere"  # a fact this model does not know
        records.append({"known_id": i, "subject": subject, "attribute": attribute, "template": template,
                        "prediction": "", "prompt": prompt, "relation_id": relation})
    facts = folder.parent / "facts.json"
    facts.write_text(json.dumps(records, indent=1))
    return folder, facts, known


def tiny_settings(**changes) -> RunSettings:
    """RunSettings of the tiny runs (T->T, noise 0.5, 3 samples, window 3, batch 24), with `changes`."""
    base = dict(arm="t2t", model="tiny", dtype="torch.float32", device="cpu", facts_fingerprint="f" * 64,
                noise_spec="0.5", noise=0.5, samples=3, window=3, seed=1, batch_size=24, positions="all")
    base.update(changes)
    return RunSettings.from_dict(base)  # the settings.json layout: trace settings at the top level


def tiny_items(model) -> list[tuple[StandInFact, TracePrompt]]:
    """Prompts of different shapes: multi-token subject, one-token subject, subject at the start and at the end."""
    specs = [([5, 17, 42, 8, 33, 61, 2, 90, 14], (2, 5)), ([7, 3, 11, 19, 23], (1, 2)),
             ([44, 45, 46, 12, 13, 14], (0, 2)), ([9, 8, 7, 6, 5, 4], (3, 6))]
    items = []
    for i, (ids, subject) in enumerate(specs):
        with torch.no_grad():
            target = int(model(torch.tensor([ids])).logits[0, -1].argmax())
        prompt = TracePrompt(text=f"prompt {i}", input_ids=tuple(ids), subject_range=subject, target_id=target,
                             modality="text")
        items.append((StandInFact(10 + i, f"s{i}", f"a{i}", f"prompt {i}"), prompt))
    return items
