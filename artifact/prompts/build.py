"""Prompts as a model sees them: its prompt format's modality markers, final token ids, subject range and answer
token, for text (`text_prompt`) and for speech units (`speech_prompt`).

The format is the loaded model's (`LoadedModel.prompt_format`, from `artifact.core.speechtext`): SpiritLM's (BRIEF
section 2, `Spiritlm._build_prompt`) concatenates segments with no separator, a marker (`[Text]` / `[Speech]`) only
where the modality changes, and, when the wanted output modality differs from the last segment's, its marker
appended. BOS comes from the tokenizer. T->T: `[Text]<prompt>`; S->T: `[Speech][Hu..]...[Text]`. A plain text LM
(`PLAIN`) has no markers: its T->T prompt is the prompt itself.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol, Sequence

from artifact.core.speechtext import SPIRITLM_FORMAT, PromptFormat
from artifact.prompts.tokens import answer_token_id, encode, find_subject_range


Modality = Literal["text", "speech"]
MARKERS: dict[str, str] = SPIRITLM_FORMAT.markers  # SpiritLM's: {"text": "[Text]", "speech": "[Speech]"}


def build_prompt(segments: Sequence[tuple[Modality, str]], output_modality: Modality = "text",
                 fmt: PromptFormat = SPIRITLM_FORMAT) -> str:
    """The prompt string of (modality, content) segments in format `fmt` (default SpiritLM's); speech content is
    the unit string (`[Hu..]` tokens). A format without markers (PLAIN) takes text segments only, as they are."""
    markers = fmt.markers
    if not markers:
        if any(modality != "text" for modality, _ in segments) or output_modality != "text":
            raise ValueError(f"Prompt format {fmt.name!r} has no modality markers: text in, text out only.")
        return "".join(content for _, content in segments)
    parts: list[str] = []
    previous: Modality | None = None
    for modality, content in segments:
        if modality not in markers:
            raise ValueError(f"Unknown segment modality {modality!r}; expected 'text' or 'speech'.")
        if modality != previous:
            parts.append(markers[modality])
        parts.append(content)
        previous = modality
    if output_modality not in markers:
        raise ValueError(f"Unknown output modality {output_modality!r}; expected 'text' or 'speech'.")
    if previous != output_modality:
        parts.append(markers[output_modality])
    return "".join(parts)


def build_spiritlm_prompt(segments: Sequence[tuple[Modality, str]], output_modality: Modality = "text") -> str:
    """SpiritLM's prompt string from (modality, content) segments; speech content is the `[Hu..]` unit string."""
    return build_prompt(segments, output_modality, SPIRITLM_FORMAT)


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


def text_prompt_string(prompt: str, fmt: PromptFormat) -> str:
    """The T->T prompt string a model of format `fmt` is given: its text marker + prompt (`[Text]` + prompt for
    SpiritLM's), the prompt itself for a plain LM."""
    return build_prompt([("text", prompt)], "text", fmt)


def text_prompt(tokenizer: Any, prompt: str, subject: str, attribute: str, fmt: PromptFormat) -> TracePrompt:
    """The T->T prompt of a fact in format `fmt`: `[Text]` + prompt for SpiritLM's, the prompt itself for a plain LM.

    The subject range is located on the final string, so BOS and the marker shift it as they should.
    """
    text = text_prompt_string(prompt, fmt)
    # The answer continues the prompt's text; for SpiritLM the [Text] marker is already in place.
    return TracePrompt(
        text=text,
        input_ids=tuple(encode(tokenizer, text)),
        subject_range=find_subject_range(tokenizer, text, subject),
        target_id=answer_token_id(tokenizer, text, attribute),
        modality="text",
    )


class UnitTokens(Protocol):
    """What a spoken prompt reads of speech units: their unit ids in order (`speech.base.SpeechUnits` has them). A
    protocol rather than an import, so the prompts stay below the speech front end."""

    @property
    def tokens(self) -> Sequence[int]: ...


def speech_prompt(tokenizer: Any, units: UnitTokens, subject_tokens: tuple[int, int], attribute: str,
                  fmt: PromptFormat = SPIRITLM_FORMAT) -> TracePrompt:
    """The S->T TracePrompt: the format's string for the speech tokens (SpiritLM's by default), its final ids (BOS
    from the tokenizer), the subject's range shifted onto those ids, and the answer token after the closing text
    marker (`[Text]`).

    `subject_tokens` is [b, e) over `units.tokens` (e.g. from `SpeechUnits.tokens_overlapping`). Raises ValueError
    when the tokenizer does not map every unit token (`[Hu..]`) to its own single token (not the model's tokenizer).
    """
    b, e = subject_tokens
    if not 0 <= b < e <= len(units.tokens):
        raise ValueError(f"Subject token range {subject_tokens} is outside the {len(units.tokens)} speech tokens.")
    if not fmt.reads_speech or fmt.text_marker is None:
        raise ValueError(f"Prompt format {fmt.name!r} has no speech and text markers: no S->T prompt.")
    unit_tokens = [fmt.unit_token.format(u) for u in units.tokens]
    text = build_prompt([("speech", "".join(unit_tokens))], "text", fmt)
    ids = encode(tokenizer, text)
    speech_id = tokenizer.convert_tokens_to_ids(fmt.speech_marker)
    text_id = tokenizer.convert_tokens_to_ids(fmt.text_marker)
    unit_ids = [tokenizer.convert_tokens_to_ids(token) for token in unit_tokens]
    unk = getattr(tokenizer, "unk_token_id", None)
    if speech_id in (None, unk) or text_id in (None, unk) or any(i in (None, unk) for i in unit_ids):
        raise ValueError(f"The tokenizer lacks the {fmt.speech_marker}/{fmt.text_marker}/"
                         f"{fmt.unit_token.format('..')} tokens of prompt format {fmt.name!r}; use the model's own "
                         "tokenizer.")
    if speech_id not in ids:
        raise ValueError(f"Encoding {text[:40]!r}... produced no {fmt.speech_marker} token.")
    offset = ids.index(speech_id) + 1
    if ids[offset: offset + len(unit_ids)] != unit_ids or ids[offset + len(unit_ids):] != [text_id]:
        raise ValueError(f"The tokenizer does not encode each {fmt.unit_token.format('..')} unit as its own token "
                         f"followed by {fmt.text_marker}; the subject's token range would be wrong.")
    return TracePrompt(
        text=text,
        input_ids=tuple(ids),
        subject_range=(offset + b, offset + e),
        target_id=answer_token_id(tokenizer, text, attribute),
        modality="speech",
    )
