"""The S->T SpiritLM prompt of a spoken fact: `[Speech][Hu..]...[Text]` with the subject range on final token ids."""

from __future__ import annotations

from typing import Any

from artifact.prompts import TracePrompt, build_spiritlm_prompt
from artifact.speech.base import SpeechUnits
from artifact.tracing.tokens import answer_token_id, encode


def speech_prompt(tokenizer: Any, units: SpeechUnits, subject_tokens: tuple[int, int], attribute: str) -> TracePrompt:
    """The S->T TracePrompt: SpiritLM's string for the speech tokens, its final ids (BOS from the tokenizer), the
    subject's range shifted onto those ids, and the answer token after the closing `[Text]` marker.

    `subject_tokens` is [b, e) over `units.tokens` (e.g. from `SpeechUnits.tokens_overlapping`). Raises ValueError
    when the tokenizer does not map every `[Hu..]` to its own single token (not a SpiritLM tokenizer).
    """
    b, e = subject_tokens
    if not 0 <= b < e <= len(units.tokens):
        raise ValueError(f"Subject token range {subject_tokens} is outside the {len(units.tokens)} speech tokens.")
    text = build_spiritlm_prompt([("speech", units.unit_string())])
    ids = encode(tokenizer, text)
    speech_id = tokenizer.convert_tokens_to_ids("[Speech]")
    text_id = tokenizer.convert_tokens_to_ids("[Text]")
    unit_ids = [tokenizer.convert_tokens_to_ids(f"[Hu{u}]") for u in units.tokens]
    unk = getattr(tokenizer, "unk_token_id", None)
    if speech_id in (None, unk) or text_id in (None, unk) or any(i in (None, unk) for i in unit_ids):
        raise ValueError("The tokenizer lacks SpiritLM's [Speech]/[Text]/[Hu..] tokens; use SpiritLM's tokenizer.")
    if speech_id not in ids:
        raise ValueError(f"Encoding {text[:40]!r}... produced no [Speech] token.")
    offset = ids.index(speech_id) + 1
    if ids[offset: offset + len(unit_ids)] != unit_ids or ids[offset + len(unit_ids):] != [text_id]:
        raise ValueError("The tokenizer does not encode each [Hu..] unit as its own token followed by [Text]; the "
                         "subject's token range would be wrong.")
    return TracePrompt(
        text=text,
        input_ids=tuple(ids),
        subject_range=(offset + b, offset + e),
        target_id=answer_token_id(tokenizer, text, attribute),
        modality="speech",
    )
