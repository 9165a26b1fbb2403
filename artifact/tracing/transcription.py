"""Implicit-transcription lens (issue 30): does a spoken subject's position read as the subject's *text* tokens?

For a speech prompt, each block's output at the subject's speech positions is read out through the model's final norm
and unembedding, as the logit lens does (`lens.py`), and the probability and rank of each of the subject's text tokens
are taken over the text-mode vocabulary: the tokens a text-mode argmax may choose (the `banned` ids, i.e.
`artifact.known.text_mode_banned_ids`: `[Text]`, `[Speech]` and the speech units, get no probability mass and are
never counted in a rank). If speech becomes text before the recall site, the text model's recall circuit can be
reused; if it never does, carry-over is not expected.

Pure: tensors in, arrays out. `transcription_lens` reads every layer from one forward (a hook per block);
`transcription_reference` is the plain oracle: the model's `output_hidden_states` with the norm and the LM head
applied by hand (the last layer's entry is already normed by the model, so it is the model's own logits).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from artifact.models.adapters import ModelAdapter, get_module
from artifact.tracing.lens import block_states


@dataclass(frozen=True)
class TranscriptionResult:
    """Per read position, layer and subject text token: P(token) over the text-mode vocabulary and its rank among
    the text-mode tokens (0 = the text-mode argmax)."""

    positions: tuple[int, ...]  # prompt positions read, ascending (the subject's speech positions)
    subject_ids: tuple[int, ...]  # the subject's text tokens, in order (the first is the subject's first token)
    prob: np.ndarray  # [position, layer, subject token] float64
    rank: np.ndarray  # [position, layer, subject token] int64

    @property
    def first_prob(self) -> np.ndarray:
        """[position, layer] P of the subject's first text token."""
        return self.prob[..., 0]

    @property
    def first_rank(self) -> np.ndarray:
        """[position, layer] rank of the subject's first text token."""
        return self.rank[..., 0]

    @property
    def best_prob(self) -> np.ndarray:
        """[position, layer] the largest P of any of the subject's text tokens."""
        return self.prob.max(axis=-1)

    @property
    def best_rank(self) -> np.ndarray:
        """[position, layer] the best (smallest) rank of any of the subject's text tokens."""
        return self.rank.min(axis=-1)

    def summary(self) -> dict[str, np.ndarray]:
        """One fact's fixed-shape curves, each [layer], for stacking over facts: `{first,best}_{prob,rank}_{last,any}`.
        `last`: at the last read position (the last subject speech token when `positions` is the subject's span);
        `any`: the best over the read positions (largest P, smallest rank)."""
        out: dict[str, np.ndarray] = {}
        views = (("first", self.first_prob, self.first_rank), ("best", self.best_prob, self.best_rank))
        for token, prob, rank in views:
            out[f"{token}_prob_last"], out[f"{token}_rank_last"] = prob[-1], rank[-1]
            out[f"{token}_prob_any"], out[f"{token}_rank_any"] = prob.max(axis=0), rank.min(axis=0)
        return out


def _check(adapter: ModelAdapter, input_ids: torch.Tensor, positions: Sequence[int], subject_ids: Sequence[int],
           banned: Sequence[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    if not adapter.family.final_norm:
        raise ValueError(f"the {adapter.family.name} adapter names no final norm; the transcription lens needs one")
    T = int(input_ids.shape[0])
    positions = tuple(sorted(int(p) for p in positions))
    if not positions or any(not 0 <= p < T for p in positions) or len(set(positions)) != len(positions):
        raise ValueError(f"positions must be distinct positions of the prompt's {T} tokens (the subject's speech "
                         f"span); got {list(positions)}")
    vocab = adapter.model.get_output_embeddings().weight.shape[0]
    subject_ids = tuple(int(i) for i in subject_ids)
    if not subject_ids or any(not 0 <= i < vocab for i in subject_ids):
        raise ValueError(f"subject_ids must be the subject's text tokens, ids in [0, {vocab}); got {list(subject_ids)}")
    hidden = sorted(set(subject_ids) & {int(b) for b in banned})
    if hidden:
        raise ValueError(f"subject token ids {hidden} are banned from text mode (markers or speech units): pass the "
                         "subject's text tokens, e.g. from the T->T prompt's subject range")
    return positions, subject_ids


def _text_mode_read_out(logits: torch.Tensor, subject_ids: Sequence[int], banned: Sequence[int]
                        ) -> tuple[np.ndarray, np.ndarray]:
    """P and rank over the text-mode vocabulary of `subject_ids` [k], from fp32 logits [..., vocab]: [..., k] each."""
    allowed = logits.float().clone()
    if len(banned):
        allowed[..., list(banned)] = -torch.inf
    ids = torch.tensor(list(subject_ids), device=logits.device)
    chosen = allowed[..., ids]  # [..., k]
    prob = torch.softmax(allowed, dim=-1)[..., ids]
    rank = torch.stack([(allowed > chosen[..., j:j + 1]).sum(dim=-1) for j in range(len(subject_ids))], dim=-1)
    return prob.double().cpu().numpy(), rank.cpu().numpy().astype(np.int64)


def transcription_lens(model: torch.nn.Module, adapter: ModelAdapter, input_ids: torch.Tensor,
                       positions: Sequence[int], subject_ids: Sequence[int], banned: Sequence[int] = ()
                       ) -> TranscriptionResult:
    """The subject's text tokens `subject_ids` read at `positions` of the prompt `input_ids` [pos], every layer, in one
    forward: P [position, layer, token] over the text-mode vocabulary (the tokens not in `banned`) and rank."""
    positions, subject_ids = _check(adapter, input_ids, positions, subject_ids, banned)
    states = block_states(model, adapter, input_ids, positions)  # [position, layer, d_model]
    norm = get_module(adapter.model, adapter.family.final_norm)
    probs, ranks = [], []
    with torch.no_grad():
        for row in states:  # one position at a time: [layer, vocab] logits
            p, r = _text_mode_read_out(model.get_output_embeddings()(norm(row)), subject_ids, banned)
            probs.append(p)
            ranks.append(r)
    return TranscriptionResult(positions, subject_ids, np.stack(probs), np.stack(ranks))


def transcription_reference(model: torch.nn.Module, adapter: ModelAdapter, input_ids: torch.Tensor,
                            positions: Sequence[int], subject_ids: Sequence[int], banned: Sequence[int] = ()
                            ) -> TranscriptionResult:
    """The same numbers the plain way: the model's `hidden_states` (entry l + 1 is block l's output), final norm and
    LM head applied by hand per layer and position; the last entry is already normed, so its logits are the model's."""
    positions, subject_ids = _check(adapter, input_ids, positions, subject_ids, banned)
    norm = get_module(adapter.model, adapter.family.final_norm)
    head = model.get_output_embeddings()
    L = adapter.num_layers
    prob = np.zeros((len(positions), L, len(subject_ids)))
    rank = np.zeros((len(positions), L, len(subject_ids)), dtype=np.int64)
    with torch.no_grad():
        out = model(input_ids=input_ids[None].to(adapter.embed.weight.device), output_hidden_states=True)
        for layer in range(L):
            for i, position in enumerate(positions):
                if layer == L - 1:
                    logits = out.logits[0, position]
                else:
                    logits = head(norm(out.hidden_states[layer + 1][0, position]))
                prob[i, layer], rank[i, layer] = _text_mode_read_out(logits, subject_ids, banned)
    return TranscriptionResult(positions, subject_ids, prob, rank)


__all__ = ["TranscriptionResult", "transcription_lens", "transcription_reference"]
