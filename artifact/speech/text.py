"""Text normalisation shared by recognition (WER) and alignment: lowercase words of letters, digits and apostrophes."""

from __future__ import annotations

import re
import unicodedata

_KEEP = re.compile(r"[^a-z0-9' ]+")


def normalize_word(word: str) -> str:
    """`word` lowercased, accents removed, everything but a-z, 0-9 and apostrophes dropped ('' if nothing is left)."""
    ascii_word = unicodedata.normalize("NFKD", word).encode("ascii", "ignore").decode()
    return _KEEP.sub("", ascii_word.lower().replace("-", " ")).strip("' ").replace(" ", "")


def normalize_text(text: str) -> str:
    """Words of `text` normalised for scoring: hyphens split words, punctuation dropped, single spaces."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    words = [w.strip("'") for w in _KEEP.sub(" ", ascii_text.replace("-", " ")).split()]
    return " ".join(w for w in words if w)


def word_error_rate(reference: str, hypothesis: str) -> float:
    """WER (jiwer) of `hypothesis` against `reference`, both normalised with `normalize_text`."""
    import jiwer  # lazy: jiwer

    ref = normalize_text(reference)
    if not ref:
        raise ValueError(f"The reference {reference!r} has no words to score against.")
    hyp = normalize_text(hypothesis)
    if not hyp:
        return 1.0  # every reference word deleted
    return float(jiwer.wer(ref, hyp))
