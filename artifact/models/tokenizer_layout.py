"""Which layout a SpiritLM tokenizer folder has, in words, for `checkpoints check`.

Meta's `tokenizer_config.json` is not public, so SpiritLM's markers and units (`[Text]`, `[Speech]`, `[Hu0]`..`[Hu500]`)
may be pieces of `tokenizer.model` or added tokens of `tokenizer_config.json`, and transformers' SentencePiece
`legacy` mode may be on (its default when the file does not say) or off. The artifact tokenises every layout as
spiritlm's own `Spiritlm` class does (it loads the tokenizer with the same call and encodes the same prompt strings);
what differs between layouts is where a bare '▁' can appear, and `answer_token_id` handles that. The check reports
the layout so that a reviewer sees what the files hold and what the S->T answer token is.

A hint at what Meta ships: with the markers as added tokens (either legacy mode), transformers decodes them with a
space around each ('[Speech] [Hu1] [Text] Paris'), so spiritlm's own `generate`, which cuts the decoded text at
len(prompt), returns misaligned text ('xt] Paris'); only the pieces layout gives its documented output. The artifact
compares token ids, never that text, so it is unaffected either way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from artifact.prompts.tokens import answer_token_id

S2T_EXAMPLE = ("[Speech][Hu0][Text]", "Paris")  # an S->T prompt's end and an answer word


@dataclass(frozen=True)
class TokenizerLayout:
    """Where a SpiritLM tokenizer keeps its markers, its legacy mode, and what that makes of an S->T answer."""

    markers: str  # "pieces" (user-defined pieces of tokenizer.model) or "added" (added tokens)
    legacy: bool  # transformers' SentencePiece legacy mode, as the tokenizer was loaded
    legacy_set: bool  # tokenizer_config.json sets "legacy" (else transformers' default, legacy mode, applies)
    special: bool  # the markers are special tokens (generate's skip_special_tokens would drop them)
    first_id: int  # id of [Text]
    last_id: int  # id of [Hu500]
    tokens: int  # len(tokenizer): ids 0..tokens-1 decode
    rows: int | None  # the LM's output rows (config.json vocab_size), None when unknown
    example: tuple[str, ...]  # tokens of S2T_EXAMPLE's prompt + ' ' + word
    answer: str  # the answer token's piece for S2T_EXAMPLE's word

    @property
    def name(self) -> str:
        """Short name: 'pieces', 'added-legacy' or 'added' (pieces with legacy off: 'pieces-nonlegacy')."""
        if self.markers == "pieces":
            return "pieces" if self.legacy else "pieces-nonlegacy"
        return "added-legacy" if self.legacy else "added"

    def describe(self) -> list[str]:
        """Lines for `checkpoints check`."""
        where = ("pieces of tokenizer.model" if self.markers == "pieces" else
                 f"added tokens of tokenizer_config.json ({'special' if self.special else 'not special'})")
        mode = f"legacy {'true' if self.legacy else 'false'}" + (
            "" if self.legacy_set else " (transformers' default: tokenizer_config.json does not set it)")
        prompt, word = S2T_EXAMPLE
        lines = [f"tokenizer layout: {self.name}: [Text], [Speech], [Hu0..500] at {self.first_id}..{self.last_id} as "
                 f"{where}; SentencePiece {mode}. Prompts are tokenised as spiritlm's Spiritlm class does.",
                 f"  S->T answer: '{prompt}' + ' {word}' -> {list(self.example)}; answer token {self.answer!r}"
                 + (" (legacy mode's '▁' after an added token is the word's space)"
                    if self.markers == "added" and self.legacy else "")]
        if self.markers == "added":
            lines.append("  note: transformers decodes added markers with spaces around them, so spiritlm's own "
                         "generate() returns misaligned text with this layout (it cuts at len(prompt)); the artifact "
                         "compares token ids and is unaffected")
        if self.rows is not None:
            beyond = self.rows - self.tokens
            lines.append(f"  vocabulary: {self.tokens} tokens, {self.rows} output rows (config.json)"
                         + (f": rows {self.tokens}..{self.rows - 1} decode to no token and are never an answer"
                            if beyond > 0 else ""))
        return lines


def tokenizer_layout(tokenizer: Any, folder: Path | None = None) -> TokenizerLayout:
    """The layout of a loaded SpiritLM tokenizer (slow `LlamaTokenizer`); `folder` adds what its files say
    (whether tokenizer_config.json sets legacy, config.json's output rows). Raises ValueError when a marker or unit
    is not one token."""
    names = ["[Text]", "[Speech]", "[Hu0]", "[Hu500]"]
    ids = tokenizer.convert_tokens_to_ids(names)
    bad = [name for name, i in zip(names, ids) if i is None or i == tokenizer.unk_token_id]
    if bad:
        raise ValueError(f"the tokenizer has no single token for {', '.join(bad)}: it is not SpiritLM's")
    added = tokenizer.added_tokens_decoder
    markers = "added" if ids[0] in added else "pieces"
    special = markers == "added" and bool(added[ids[0]].special)
    config = _json(folder / "tokenizer_config.json") if folder else {}
    model_config = _json(folder / "config.json") if folder else {}
    prompt, word = S2T_EXAMPLE
    answer = answer_token_id(tokenizer, prompt, word)
    return TokenizerLayout(
        markers=markers, legacy=bool(getattr(tokenizer, "legacy", False)), legacy_set="legacy" in config,
        special=special, first_id=int(ids[0]), last_id=int(ids[3]), tokens=len(tokenizer),
        rows=int(model_config["vocab_size"]) if "vocab_size" in model_config else None,
        example=tuple(tokenizer.convert_ids_to_tokens(tokenizer(f"{prompt} {word}")["input_ids"])),
        answer=tokenizer.convert_ids_to_tokens([answer])[0])


def _json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
