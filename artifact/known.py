"""The Known-t2t filter: which facts a model answers correctly from a text prompt (BRIEF sections 1 and 3).

ROME traces a fact only when the model's prediction is correct. The rule here (KNOWN_RULE): the model's greedy next
token after its own T->T prompt equals the answer token, the first token of the attribute as it continues the prompt
(`artifact.tracing.answer_token_id`). The prompt is in the model's prompt format: `[Text]` + prompt for SpiritLM's,
the prompt itself for a plain LM (`artifact.prompts.text_prompt_string`, as `text_prompt` builds it).

"Greedy" means SpiritLM's own text-output decoding: its `generate(output_modality=TEXT)` bans the modality markers
and every speech token (`get_forbidden_tokens(generate_only_text=True)` in spiritlm's `model/utils.py`), so the argmax
is taken over the other tokens (`text_mode_banned_ids`); after a spoken prompt `[Speech]` or a unit token can
otherwise be the top token. Output rows the tokenizer has no token for (SpiritLM base's padding rows) are left out
too: they cannot be decoded. A model without such tokens or rows has nothing banned.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Sequence

from artifact.core.speechtext import PromptFormat, prompt_formats
from artifact.facts import Fact
from artifact.prompts.build import text_prompt_string
from artifact.prompts.tokens import answer_token_id, encode

TEXT_MODE = (
    " Greedy in text mode, as SpiritLM's text output: the argmax over every token but [Text], [Speech] and the speech "
    "tokens [HuN] ([PiN], [StN] in Expressive), which spiritlm's get_forbidden_tokens(generate_only_text=True) bans."
)
KNOWN_RULE = (
    "A fact is known when the model's greedy next token after its T->T prompt ('[Text]' + prompt for SpiritLM, the "
    "prompt itself otherwise) equals the answer token: the first token of the attribute as it continues the prompt "
    "(the first token of prompt + ' ' + attribute after the prompt's own tokens)." + TEXT_MODE
)
KNOWN_RULE_S2T = (
    "A fact is known from speech when the model's greedy next token after its S->T prompt ('[Speech]' + the spoken "
    "prompt's unit tokens + '[Text]') equals the answer token: the first token of ' ' + attribute after '[Text]'."
    + TEXT_MODE
)
# Appended to the rule in known.json when the model runs in a reduced precision (bf16: SpiritLM on a GPU).
ONE_PROMPT_PER_FORWARD = (
    " In bf16 the check runs one prompt per forward, as Spiritlm.generate runs it: a batched bf16 forward of "
    "right-padded prompts can round differently from a single one (a GPU's kernels depend on the batch shape) and "
    "flip a fact within rounding of a tie."
)
# SpiritLM Expressive's pitch and style tokens, banned as its speech units are (no registered model reads them).
EXPRESSIVE_TOKENS: tuple[str, ...] = ("[Pi{}]", "[St{}]")


def non_text_token_pattern(formats: Sequence[PromptFormat] | None = None) -> re.Pattern[str]:
    """The tokens no text-mode argmax picks: every format's markers and unit tokens (`[Text]`, `[Speech]`, `[HuN]`
    for SpiritLM's; default: every registered format, `artifact.core.speechtext.prompt_formats`), and Expressive's
    `[PiN]`, `[StN]`."""
    formats = prompt_formats() if formats is None else formats
    markers = sorted({marker for fmt in formats for marker in fmt.markers.values()})
    units = sorted({fmt.unit_token for fmt in formats if fmt.reads_speech} | set(EXPRESSIVE_TOKENS))
    parts = [re.escape(m) for m in markers] + [re.escape(u).replace(r"\{\}", r"\d+") for u in units]
    return re.compile("|".join(parts))


def text_mode_banned_ids(tokenizer: Any, rows: int | None = None) -> list[int]:
    """Sorted ids of the tokens SpiritLM never generates when asked for text: `[Text]`, `[Speech]` and every speech
    token (`[HuN]`; `[PiN]`, `[StN]` in Expressive), found by name in the tokenizer's vocabulary (never hard-coded).

    With `rows`, the model's output rows, also every row the tokenizer has no token for: SpiritLM base's output layer
    has 32512 rows for 32503 tokens, and an argmax on a padding row (32503..32511) makes `tokenizer.decode` raise
    IndexError (spiritlm's own list leaves them out, so its decoding would fail there). They stand for no token, so no
    answer can be one. Empty for a plain tokenizer as large as its model."""
    vocab = tokenizer.get_vocab()
    pattern = non_text_token_pattern()
    banned = {int(i) for token, i in vocab.items() if pattern.fullmatch(token)}
    if rows is not None:
        banned |= set(range(rows)) - {int(i) for i in vocab.values()}
    return sorted(banned)


def output_rows(model: Any) -> int:
    """How many next-token logits `model` gives: the rows of its output layer (may exceed the tokenizer's size)."""
    return int(model.get_output_embeddings().weight.shape[0])


def reduced_precision(dtype: Any) -> bool:
    """A floating dtype narrower than fp32 (bf16, fp16): its forwards may round differently per batch shape."""
    import torch  # lazy: torch

    return isinstance(dtype, torch.dtype) and dtype.is_floating_point and torch.finfo(dtype).bits < 32


def batching_rule(dtype: Any) -> str:
    """What the Known rule in known.json adds for a model of `dtype`: one prompt per forward in bf16, nothing in
    fp32/float64 (batches of right-padded prompts, equal to one at a time up to fp32 rounding, ~1e-5 in a margin)."""
    return ONE_PROMPT_PER_FORWARD if reduced_precision(dtype) else ""


@dataclass(frozen=True)
class KnownCheck:
    """One fact's Known check: the answer token, the model's greedy token, and the answer's probability."""

    known_id: int
    known: bool  # predicted_id == answer_id
    answer_id: int  # first token of the attribute as it continues the prompt
    predicted_id: int  # argmax of the next-token logits after the prompt, over the text-mode tokens
    answer: str  # decoded answer token
    predicted: str  # decoded predicted token
    p_answer: float | None  # softmax probability of the answer token (None when the fact could not be checked)
    problem: str = ""  # why the fact could not be checked (its answer token is undefined); known is then False
    # logit of the answer minus the largest logit of any other text-mode token: > 0 exactly when known; for a known
    # fact the top-1/top-2 gap. How far the fact is from flipping its Known verdict (float noise moves it ~1e-5).
    margin: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Encoded:
    input_ids: tuple[int, ...]  # [pos], the model's T->T prompt with its tokenizer's special tokens
    answer_id: int


def _encode_fact(tokenizer: Any, fact: Fact, fmt: PromptFormat) -> _Encoded:
    # The same token ids and answer token as artifact.prompts.text_prompt, without its subject range: a fact whose
    # subject cannot be located unambiguously in the tokens can still be checked (it just cannot be traced).
    text = text_prompt_string(fact.prompt, fmt)
    return _Encoded(tuple(encode(tokenizer, text)), answer_token_id(tokenizer, text, fact.attribute))


def _pad_id(tokenizer: Any) -> int:
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id, 0):
        if candidate is not None:
            return int(candidate)
    return 0


def last_token_logits(model: Any, rows: Sequence[Sequence[int]], pad_id: int = 0) -> Any:
    """[batch, vocab] fp32 logits after each row's own last token, for rows of different lengths in one forward.

    Rows are right-padded with an attention mask; with a causal model, padding after a row's last real token cannot
    change that token's logits. Only the last real positions go through the LM head. Gradients flow if enabled.
    """
    import torch  # lazy: torch

    lengths = torch.tensor([len(row) for row in rows])
    if len(rows) == 0 or int(lengths.min()) < 1:
        raise ValueError("An empty prompt has no next token; every prompt needs at least one token.")
    width = int(lengths.max())
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)  # [batch, pos]
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)  # [batch, pos]
    for i, row in enumerate(rows):
        input_ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        attention_mask[i, : len(row)] = 1
    device = next(model.parameters()).device
    hidden = model.base_model(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device),
                              use_cache=False).last_hidden_state  # [batch, pos, d_model]
    last = hidden[torch.arange(len(rows), device=device), (lengths - 1).to(device)]  # [batch, d_model]
    return model.get_output_embeddings()(last).float()


def next_token_probs(model: Any, rows: Sequence[Sequence[int]], pad_id: int = 0) -> Any:
    """Next-token probabilities [batch, vocab] (float32, CPU) after each row's own last token (`last_token_logits`)."""
    import torch  # lazy: torch

    with torch.inference_mode():
        return torch.softmax(last_token_logits(model, rows, pad_id), dim=-1).cpu()


def answer_margins(logits: Any, answer_ids: Sequence[int], banned: Sequence[int] = ()) -> list[float]:
    """Per row of [batch, vocab] logits: the answer's logit minus the largest logit of any other token that is not
    `banned` (> 0 exactly when the answer is the greedy token)."""
    import torch  # lazy: torch

    others = logits.detach().float().clone()
    if len(banned):
        others[:, list(banned)] = -torch.inf
    rows = torch.arange(others.shape[0])
    answers = torch.as_tensor(list(answer_ids), dtype=torch.long)
    answer_logits = others[rows, answers].clone()
    others[rows, answers] = -torch.inf
    return (answer_logits - others.max(dim=1).values).tolist()


def check_known_prompts(
    loaded: Any, facts: Sequence[Fact], prompts: Sequence[Any], batch_size: int = 32, progress: bool = True,
    desc: str = "known check",
) -> list[KnownCheck]:
    """The Known check of already built prompts (anything with `input_ids` and `target_id`, e.g. a TracePrompt of
    either modality), one per fact, in the order given: greedy next token in text mode == target token.

    Prompts are sorted by length and run `batch_size` at a time (right padding, attention mask); the result equals
    one forward per fact up to fp32 rounding. A bf16 model runs one prompt per forward whatever `batch_size`
    (`batching_rule`): the same shapes as `Spiritlm.generate`, so the same bits on the same device.
    """
    from tqdm import tqdm  # lazy: tqdm

    if len(facts) != len(prompts):
        raise ValueError(f"{len(facts)} facts but {len(prompts)} prompts; give one prompt per fact.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1; got {batch_size}.")
    if reduced_precision(next(loaded.model.parameters()).dtype):
        batch_size = 1
    tokenizer = loaded.tokenizer
    order = sorted(range(len(facts)), key=lambda i: (len(prompts[i].input_ids), i))
    pad_id = _pad_id(tokenizer)
    banned = text_mode_banned_ids(tokenizer, output_rows(loaded.model))
    checks: list[KnownCheck | None] = [None] * len(facts)
    with tqdm(total=len(facts), desc=desc, unit="fact", disable=not progress) as bar:
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            import torch  # lazy: torch

            with torch.inference_mode():
                logits = last_token_logits(loaded.model, [prompts[i].input_ids for i in chunk], pad_id).cpu()
            probs = torch.softmax(logits, dim=-1)  # [batch, vocab]
            allowed = probs.clone()
            allowed[:, banned] = -1.0  # below every probability: never the argmax
            margins = answer_margins(logits, [int(prompts[i].target_id) for i in chunk], banned)
            for row, i in enumerate(chunk):
                answer_id = int(prompts[i].target_id)
                predicted_id = int(allowed[row].argmax())
                checks[i] = KnownCheck(
                    known_id=facts[i].known_id,
                    known=predicted_id == answer_id,
                    answer_id=answer_id,
                    predicted_id=predicted_id,
                    answer=tokenizer.decode([answer_id]),
                    predicted=tokenizer.decode([predicted_id]),
                    p_answer=float(probs[row, answer_id]),
                    margin=float(margins[row]),
                )
            bar.update(len(chunk))
    return checks  # type: ignore[return-value]


def check_known(
    loaded: Any, facts: Sequence[Fact], modality: str = "text", batch_size: int = 32, progress: bool = True
) -> list[KnownCheck]:
    """The Known-t2t check (KNOWN_RULE) of every fact, in the order given; `loaded` is an artifact.models.LoadedModel.
    A fact whose answer token is undefined (e.g. a bare space) is not known, with the reason in `problem`.
    For speech, build the S->T prompts (artifact.experiments.arms.spoken_items) and use `check_known_prompts`."""
    if modality != "text":
        raise ValueError(f"check_known builds text prompts only; for modality {modality!r} build the spoken prompts "
                         "(artifact.experiments.arms.spoken_items) and call check_known_prompts.")
    checkable, prompts, problems = [], [], {}
    for fact in facts:
        try:
            encoded = _encode_fact(loaded.tokenizer, fact, loaded.prompt_format)
        except ValueError as exc:  # e.g. the answer's first token is a bare space: not a fact to score
            problems[fact.known_id] = str(exc)
            continue
        checkable.append(fact)
        prompts.append(_Prompt(encoded.input_ids, encoded.answer_id))
    checked = iter(check_known_prompts(loaded, checkable, prompts, batch_size, progress))
    return [KnownCheck(fact.known_id, False, -1, -1, "", "", None, problems[fact.known_id])
            if fact.known_id in problems else next(checked) for fact in facts]


@dataclass(frozen=True)
class _Prompt:
    input_ids: tuple[int, ...]
    target_id: int


def known_facts(facts: Sequence[Fact], checks: Sequence[KnownCheck]) -> list[Fact]:
    """The facts whose check says known, in order (checks as returned by check_known for these facts)."""
    if [f.known_id for f in facts] != [c.known_id for c in checks]:
        raise ValueError("The checks do not belong to these facts (known_ids differ); run check_known on them.")
    return [fact for fact, check in zip(facts, checks) if check.known]
