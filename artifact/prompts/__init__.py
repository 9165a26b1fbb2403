"""Prompts as a model sees them: token ids, where the subject sits, which token is the answer.

- `tokens.py` subject location and answer token on any tokenizer (SentencePiece without offsets included)
- `build.py`  prompt strings in a model's prompt format (SpiritLM's markers, or none) and `TracePrompt`s for text (T->T) and for speech units (S->T)
"""

from artifact.prompts.build import (
    MARKERS,
    TracePrompt,
    build_prompt,
    build_spiritlm_prompt,
    speech_prompt,
    text_prompt,
    text_prompt_string,
)
from artifact.prompts.tokens import SubjectLocationError, answer_token_id, encode, find_subject_range

__all__ = [
    "MARKERS", "SubjectLocationError", "TracePrompt", "answer_token_id", "build_prompt", "build_spiritlm_prompt", "encode",
    "find_subject_range", "speech_prompt", "text_prompt", "text_prompt_string",
]
