"""Where a subject sits in a prompt's tokens, and which token is the answer.

Works for slow tokenizers without offset mappings (SpiritLM's SentencePiece `LlamaTokenizer`): the subject's range
is found by encoding the text up to the subject's start and up to its end and comparing token counts with the full
encoding, so it is exact whatever the tokenizer does with spaces and special tokens.
"""

from __future__ import annotations

from typing import Any, Sequence


class SubjectLocationError(ValueError):
    """The subject cannot be located unambiguously in the prompt's tokens."""


def encode(tokenizer: Any, text: str) -> list[int]:
    """Token ids of `text` with the tokenizer's own special-token settings (BOS for Llama/SpiritLM)."""
    return list(tokenizer(text)["input_ids"])


def _is_prefix(prefix: Sequence[int], full: Sequence[int]) -> bool:
    return len(prefix) <= len(full) and list(full[: len(prefix)]) == list(prefix)


def _leading_tokens(tokenizer: Any, text: str, full: list[int]) -> int:
    """Number of tokens of `full` that encode exactly `text` (a prefix of the prompt), or -1 if no clean cut."""
    candidates = [text]
    stripped = text.rstrip()
    if stripped != text:
        candidates.append(stripped)  # SentencePiece turns a trailing space into a lone '▁' the full text lacks
    for candidate in candidates:
        ids = encode(tokenizer, candidate)
        if _is_prefix(ids, full):
            return len(ids)
    return -1


def find_subject_range(tokenizer: Any, prompt: str, subject: str, occurrence: int = 0) -> tuple[int, int]:
    """Token range [b, e) of `subject` inside `tokenizer(prompt)`, BOS and markers included in the count.

    `occurrence` picks which appearance of the subject to use when it appears more than once (default: the first).
    Raises SubjectLocationError when the subject is absent or a token straddles its boundary.
    """
    if not prompt:
        raise SubjectLocationError("The prompt is empty: pass the prompt text that contains the subject.")
    if not subject or not subject.strip():
        raise SubjectLocationError("The subject is empty: pass the subject string as it appears in the prompt.")
    start = -1
    for _ in range(occurrence + 1):
        start = prompt.find(subject, start + 1)
        if start < 0:
            raise SubjectLocationError(
                f"Subject {subject!r} does not occur in prompt {prompt!r}"
                + (f" {occurrence + 1} times" if occurrence else "")
                + ". The subject must appear verbatim (same case and spelling) in the prompt."
            )
    end = start + len(subject)
    full = encode(tokenizer, prompt)
    begin_tok = _leading_tokens(tokenizer, prompt[:start], full)
    end_tok = _leading_tokens(tokenizer, prompt[:end], full)
    if begin_tok < 0 or end_tok < 0 or end_tok <= begin_tok:
        where = "start" if begin_tok < 0 else "end"
        raise SubjectLocationError(
            f"Subject {subject!r} in prompt {prompt!r}: a token straddles the subject's {where}, so its token range "
            "is ambiguous. Choose a subject that ends on a word boundary (e.g. the whole word)."
        )
    return begin_tok, end_tok


SPIECE_UNDERLINE = "\u2581"  # "▁", SentencePiece's word-start mark


def answer_token_id(tokenizer: Any, prompt: str, attribute: str) -> int:
    """The first token of `attribute` as it continues `prompt`: first token of prompt + ' ' + attribute after the
    prompt's own tokens.

    Right for SentencePiece too, where ' Paris' encoded alone starts with a bare '▁'. One more case where that first
    token is a bare '▁': a SentencePiece tokenizer in legacy mode (transformers' `legacy=True`) encodes the text
    after an added token (SpiritLM's `[Text]` when the markers are added tokens) on its own, with the dummy '▁' prefix
    SentencePiece puts before every text: prompt + ' Paris' ends in '[Text]', '▁', '▁Paris', while prompt + 'Paris'
    ends in '[Text]', '▁Paris'. The tokenizer itself then supplies the word's space, so the answer is the word-start
    piece of prompt + attribute ('▁Paris', as in every other layout). Any other target that decodes to whitespace
    only (e.g. before digits, ' 1889' -> '▁', '1', ...) is refused (ValueError): it would score P(space), not
    P(answer).
    """
    if not attribute or not attribute.strip():
        raise ValueError("The attribute is empty: pass the expected answer text (e.g. 'Paris').")
    prompt_ids = encode(tokenizer, prompt)
    full_ids = encode(tokenizer, prompt + " " + attribute.strip())
    if not _is_prefix(prompt_ids, full_ids) or len(full_ids) == len(prompt_ids):
        raise ValueError(
            f"Encoding prompt + ' ' + attribute does not extend the prompt's own tokens (prompt {prompt!r}, "
            f"attribute {attribute!r}); the answer token is undefined. Check that the prompt does not end in a space."
        )
    target = int(full_ids[len(prompt_ids)])
    if not tokenizer.decode([target]).strip():
        joined = _word_start_after(tokenizer, prompt_ids, prompt + attribute.strip())
        if joined is not None:
            return joined
        raise ValueError(
            f"The answer token of {attribute!r} after prompt {prompt!r} is a bare space "
            f"({tokenizer.convert_ids_to_tokens([target])}), not the start of the answer: the tokenizer splits the "
            "space before the attribute into a token of its own (e.g. before digits). Such a fact cannot be scored by "
            "its answer token."
        )
    return target


def _word_start_after(tokenizer: Any, prompt_ids: list[int], joined_text: str) -> int | None:
    """The first token after `prompt_ids` in `joined_text` (the prompt and the attribute with no space between) when
    it is a SentencePiece word-start piece with text ('▁Paris': the tokenizer adds the '▁' itself, as legacy mode
    does after an added token); None otherwise."""
    ids = encode(tokenizer, joined_text)
    if not _is_prefix(prompt_ids, ids) or len(ids) == len(prompt_ids):
        return None
    token = int(ids[len(prompt_ids)])
    piece = tokenizer.convert_ids_to_tokens([token])[0]
    if isinstance(piece, str) and piece.startswith(SPIECE_UNDERLINE) and tokenizer.decode([token]).strip():
        return token
    return None
