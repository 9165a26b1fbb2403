"""A SpiritLM-shaped checkpoint for tests: BRIEF section 2's exact layout and file formats, with tiny weights.

    .venv/bin/python tests/support/spiritlm_checkpoint.py OUT [--seed 0] [--layout pieces|added-legacy|added|pieces-nonlegacy]

writes, under the checkpoints root OUT,

    spiritlm_model/spirit-lm-base-7b/  config.json, generation_config.json, pytorch_model.bin (one file, bf16),
                                       special_tokens_map.json, tokenizer_config.json, tokenizer.model
    speech_tokenizer/hubert_25hz/      mhubert_base_25hz.pt, L11_quantizer_500.pt

so that the whole SpiritLM path runs on a CPU through SpiritLM's own code: the slow `LlamaTokenizer` on a Llama-style
SentencePiece model with `[Text]`, `[Speech]`, `[Hu0]`..`[Hu500]` at 32000..32502 (as pieces of the model, or as added
tokens, with legacy true or false: `TOKENIZER_LAYOUTS`, `--layout`), a `LlamaForCausalLM` with 32512 embedding rows
(SpiritLM base's padded vocabulary), and spiritlm's HuBERT + linear quantizer checkpoints.

A random LM knows no fact, so nothing would pass the Known filters and nothing would be traced. The LM is therefore
taught a few facts (`taught_facts`: the first three of each relation of the project's own set) in both modalities:
their T->T prompts and their S->T prompts from the offline front end with this checkpoint's own HuBERT units, the
answer at the last position, until the project's own Known rule says every one is known from text and from speech.
The numbers of such a model mean nothing; the point is that every line of the SpiritLM path runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Sequence

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # run as a script
    sys.path.insert(0, str(REPO))

from tests.support.llama_tokenizer import (  # noqa: E402
    LLAMA_BASE_PIECES,
    SPIRITLM_MARKERS,
    default_corpus,
    train_llama_sentencepiece,  # noqa: E402
)

log = logging.getLogger(__name__)

MODEL_SUBDIR = Path("spiritlm_model") / "spirit-lm-base-7b"
HUBERT_SUBDIR = Path("speech_tokenizer") / "hubert_25hz"
VOCAB_ROWS = 32512  # SpiritLM base: 32000 Llama pieces + 503 new tokens, padded to a multiple of 64
FACTS_PER_RELATION = 3
# The offline front end with SpiritLM's own units: what `--front-end offline` gives a SpiritLM run.
OFFLINE_FRONT_END = {"tts": "espeak-ng", "recognizer": "none", "aligner": "pocketsphinx",
                     "unit_tokenizer": "spiritlm", "validate_alignment": False}


def _added(content: str) -> dict[str, Any]:
    return {"__type": "AddedToken", "content": content, "lstrip": False, "normalized": False, "rstrip": False,
            "single_word": False}


# Where SpiritLM's markers and units live in its tokenizer files. Meta's tokenizer_config.json is not public, so the
# fixture writes each layout that spiritlm's `LlamaTokenizer.from_pretrained(path, add_bos_token=True,
# add_eos_token=False)` loads, all with [Text], [Speech], [Hu0]..[Hu500] at 32000..32502:
TOKENIZER_LAYOUTS: dict[str, str] = {
    "pieces": "user-defined pieces of tokenizer.model; tokenizer_config.json does not set legacy (transformers' "
              "default, legacy mode)",
    "added-legacy": "added tokens in tokenizer_config.json's added_tokens_decoder (not special, so that "
                    "generate's skip_special_tokens keeps [Hu..] in spiritlm's output) over Llama's 32000 pieces, "
                    "\"legacy\": true",
    "added": "added tokens as in added-legacy, \"legacy\": false",
    "pieces-nonlegacy": "pieces as in pieces, \"legacy\": false",
}


def write_tokenizer(folder: Path, layout: str = "pieces") -> None:
    """tokenizer.model (Llama-style SentencePiece) and Llama 2's two tokenizer JSON files, with SpiritLM's markers and
    units in `layout` (TOKENIZER_LAYOUTS)."""
    if layout not in TOKENIZER_LAYOUTS:
        raise ValueError(f"Unknown tokenizer layout {layout!r}; choose one of {', '.join(TOKENIZER_LAYOUTS)}.")
    added = layout.startswith("added")
    train_llama_sentencepiece(folder, default_corpus(), extra_pieces=() if added else SPIRITLM_MARKERS)
    config: dict[str, Any] = {
        "add_bos_token": True, "add_eos_token": False, "bos_token": _added("<s>"), "eos_token": _added("</s>"),
        "unk_token": _added("<unk>"), "clean_up_tokenization_spaces": False, "model_max_length": 4096,
        "pad_token": None, "sp_model_kwargs": {}, "tokenizer_class": "LlamaTokenizer",
    }
    if added:
        markers = {LLAMA_BASE_PIECES + i: token for i, token in enumerate(SPIRITLM_MARKERS)}
        entries = {0: "<unk>", 1: "<s>", 2: "</s>", **markers}
        config["added_tokens_decoder"] = {
            str(i): {"content": t, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False,
                     "special": i < 3} for i, t in entries.items()}
    if layout != "pieces":
        config["legacy"] = layout == "added-legacy"
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    (folder / "special_tokens_map.json").write_text(json.dumps(
        {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}, indent=2) + "\n")


def tiny_config() -> Any:
    """Llama 2's configuration at toy width: 8 blocks of width 64, SpiritLM base's 32512-row vocabulary."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=VOCAB_ROWS, hidden_size=64, intermediate_size=172, num_hidden_layers=8, num_attention_heads=4,
        num_key_value_heads=4, max_position_embeddings=4096, rms_norm_eps=1e-5, rope_theta=10000.0,
        hidden_act="silu", initializer_range=0.02, bos_token_id=1, eos_token_id=2, pad_token_id=None,
        tie_word_embeddings=False, torch_dtype="bfloat16",
    )


def save_model(model_dir: Path, model: Any) -> None:
    """`model` as SpiritLM ships its LM: one bf16 `pytorch_model.bin` (no safetensors), config and generation config."""
    import torch

    model.to(torch.bfloat16).save_pretrained(model_dir, safe_serialization=False, max_shard_size="100GB")
    model.generation_config.save_pretrained(model_dir)


def random_model(seed: int = 0) -> Any:
    """A random tiny LlamaForCausalLM of `tiny_config()` (seeded)."""
    import torch
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    return LlamaForCausalLM(tiny_config())


def taught_facts() -> list[Any]:
    """The facts the tiny model is taught: the first FACTS_PER_RELATION of each relation of the own set, in order."""
    from artifact.facts import load_facts

    counts: dict[str, int] = {}
    chosen = []
    for fact in load_facts("own"):
        counts[fact.relation_id] = counts.get(fact.relation_id, 0) + 1
        if counts[fact.relation_id] <= FACTS_PER_RELATION:
            chosen.append(fact)
    return chosen


def _prompts(root: Path, tokenizer: Any, facts: Sequence[Any]) -> list[Any]:
    """T->T and S->T TracePrompts of `facts` (S->T from the offline front end with this checkpoint's HuBERT)."""
    from artifact.core.speechtext import SPIRITLM_FORMAT
    from artifact.prompts.build import speech_prompt, text_prompt
    from artifact.speech.front_end import FrontEndConfig, SpeechFrontEnd

    prompts = [text_prompt(tokenizer, f.prompt, f.subject, f.attribute, SPIRITLM_FORMAT) for f in facts]
    front = SpeechFrontEnd(FrontEndConfig(**OFFLINE_FRONT_END))
    for fact in facts:
        spoken = front.process(fact.prompt, fact.subject)
        prompts.append(speech_prompt(tokenizer, spoken.units, spoken.subject_tokens, fact.attribute))
    return prompts


def teach(model: Any, prompts: Sequence[Any], seed: int, max_steps: int = 600) -> int:
    """Train every weight of `model` on the answer token at each prompt's last position (cross-entropy, Adam) until
    the answer is the argmax with a margin of 2 nats on every prompt; returns the steps taken."""
    import torch

    from artifact.known import last_token_logits

    torch.manual_seed(seed)
    rows = [list(p.input_ids) for p in prompts]
    targets = torch.tensor([p.target_id for p in prompts])  # [prompts]
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for step in range(1, max_steps + 1):
        logits = last_token_logits(model, rows)  # [prompts, vocab]
        loss = torch.nn.functional.cross_entropy(logits, targets)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        with torch.no_grad():
            answer = logits.gather(1, targets[:, None])[:, 0]
            logits.scatter_(1, targets[:, None], float("-inf"))
            margin = float((answer - logits.max(dim=1).values).min())
        if margin > 2.0:
            break
    model.eval()
    if margin <= 2.0:
        raise RuntimeError(f"the tiny LM did not learn its facts in {max_steps} steps (margin {margin:.2f})")
    return step


def write_spiritlm_checkpoint(root: Path, seed: int = 0, layout: str = "pieces") -> Path:
    """Write a SpiritLM-shaped checkpoints root at `root` (see the module docstring), its tokenizer in `layout`
    (TOKENIZER_LAYOUTS); returns `root`."""
    from transformers import LlamaTokenizer

    from artifact.training.distill import cpu_threads
    from tests.support.spiritlm_speech_tokenizer import write_hubert_25hz

    root = Path(root)
    model_dir = root / MODEL_SUBDIR
    model_dir.mkdir(parents=True, exist_ok=True)
    write_hubert_25hz(root / HUBERT_SUBDIR, seed=seed)
    write_tokenizer(model_dir, layout)
    tokenizer = LlamaTokenizer.from_pretrained(model_dir, add_bos_token=True, add_eos_token=False)
    assert tokenizer.convert_tokens_to_ids(list(SPIRITLM_MARKERS)) == list(
        range(LLAMA_BASE_PIECES, LLAMA_BASE_PIECES + len(SPIRITLM_MARKERS)))
    previous = os.environ.get("SPIRITLM_CHECKPOINTS_DIR")
    os.environ["SPIRITLM_CHECKPOINTS_DIR"] = str(root)
    try:
        prompts = _prompts(root, tokenizer, taught_facts())
    finally:
        if previous is None:
            os.environ.pop("SPIRITLM_CHECKPOINTS_DIR")
        else:
            os.environ["SPIRITLM_CHECKPOINTS_DIR"] = previous
    model = random_model(seed)
    with cpu_threads(1):  # bitwise repeatable, and fast for so small a model even on a busy machine
        steps = teach(model, prompts, seed)
    save_model(model_dir, model)
    log.info("SpiritLM-shaped checkpoint at %s (%d prompts taught in %d steps)", root, len(prompts), steps)
    return root


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="the checkpoints root to write (what SPIRITLM_CHECKPOINTS_DIR names)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--layout", choices=list(TOKENIZER_LAYOUTS), default="pieces",
                        help="where the markers live in the tokenizer files (default: pieces of tokenizer.model)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    write_spiritlm_checkpoint(args.out, args.seed, args.layout)
    print(f"wrote a SpiritLM-shaped checkpoint to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
