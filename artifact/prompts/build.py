"""Prompts as a model sees them: SpiritLM's modality markers, final token ids, subject range and answer token,
for text (`text_prompt`) and for speech units (`speech_prompt`).

SpiritLM's format (BRIEF section 2, `Spiritlm._build_prompt`): segments are concatenated with no separator, a marker
(`[Text]` / `[Speech]`) only where the modality changes, and, when the wanted output modality differs from the last
segment's, its marker appended. BOS comes from the tokenizer. T->T: `[Text]<prompt>`; S->T: `[Speech][Hu..]...[Text]`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal, Sequence

from artifact.prompts.tokens import answer_token_id, encode, find_subject_range

if TYPE_CHECKING:
    from artifact.speech.base import SpeechUnits

Modality = Literal["text", "speech"]
MARKERS: dict[Modality, str] = {"text": "[Text]", "speech": "[Speech]"}


def build_spiritlm_prompt(segments: Sequence[tuple[Modality, str]], output_modality: Modality = "text") -> str:
    """SpiritLM's prompt string from (modality, content) segments; speech content is the `[Hu..]` unit string."""
    parts: list[str] = []
    previous: Modality | None = None
    for modality, content in segments:
        if modality not in MARKERS:
            raise ValueError(f"Unknown segment modality {modality!r}; expected 'text' or 'speech'.")
        if modality != previous:
            parts.append(MARKERS[modality])
        parts.append(content)
        previous = modality
    if output_modality not in MARKERS:
        raise ValueError(f"Unknown output modality {output_modality!r}; expected 'text' or 'speech'.")
    if previous != output_modality:
        parts.append(MARKERS[output_modality])
    return "".join(parts)


@dataclass(frozen=True)
class TracePrompt:
    """One fact's prompt ready for tracing: final token ids, subject token range [b, e), answer token."""

    text: str  # the full prompt string given to the tokenizer (markers included)
    input_ids: tuple[int, ...]  # [pos], BOS included when the tokenizer adds one
    subject_range: tuple[int, int]
    target_id: int
    modality: Modality  # modality of the prompt's content (text for T->T, speech for S->T)

    @property
    def last_position(self) -> int:
        """Where the answer is read: the final token (T->T: last prompt token; S->T: the [Text] marker)."""
        return len(self.input_ids) - 1

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["input_ids"] = list(self.input_ids)
        data["subject_range"] = list(self.subject_range)
        return data


def text_prompt_string(prompt: str, spiritlm: bool) -> str:
    """The T->T prompt string a model is given: `[Text]` + prompt for a SpiritLM model, the prompt itself otherwise."""
    return build_spiritlm_prompt([("text", prompt)]) if spiritlm else prompt


def text_prompt(tokenizer: Any, prompt: str, subject: str, attribute: str, spiritlm: bool) -> TracePrompt:
    """The T->T prompt of a fact: `[Text]` + prompt for a SpiritLM model, the prompt itself for a plain LM.

    The subject range is located on the final string, so BOS and the marker shift it as they should.
    """
    text = text_prompt_string(prompt, spiritlm)
    # The answer continues the prompt's text; for SpiritLM the [Text] marker is already in place.
    return TracePrompt(
        text=text,
        input_ids=tuple(encode(tokenizer, text)),
        subject_range=find_subject_range(tokenizer, text, subject),
        target_id=answer_token_id(tokenizer, text, attribute),
        modality="text",
    )


def speech_prompt(tokenizer: Any, units: "SpeechUnits", subject_tokens: tuple[int, int], attribute: str) -> TracePrompt:
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
