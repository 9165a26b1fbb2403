"""Distillation of new token embeddings: the student's next-token distribution after a prompt that uses new tokens
should match the frozen teacher's after the equivalent text prompt (KL(teacher || student) at the last position).

Only the new embedding rows get gradients (base rows' gradients are zeroed, and Adam leaves zero-gradient entries
exactly unchanged), so the text model is bit-for-bit the frozen one. Seeded, resumable by epoch checkpoints.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from artifact.core.fileio import write_atomic
from artifact.known import last_token_logits
from artifact.training.config import DistillConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Example:
    """One distillation pair: student ids (e.g. an S->T prompt) and the teacher's equivalent text ids."""

    fact_id: str
    student_ids: tuple[int, ...]
    teacher_ids: tuple[int, ...]
    answer_id: int
    kind: str  # "s2t" (speech prompt) or "t2t" (text prompt with the [Text] marker)


@dataclass
class TrainState:
    epoch: int = 0
    history: list[dict] = field(default_factory=list)


@torch.no_grad()
def teacher_log_probs(model: torch.nn.Module, examples: Sequence[Example], text_vocab: int, pad_id: int,
                      batch_size: int = 16) -> torch.Tensor:
    """[examples, text_vocab] log-probabilities of the frozen model after each example's teacher ids."""
    out = []
    for start in range(0, len(examples), batch_size):
        chunk = [e.teacher_ids for e in examples[start : start + batch_size]]
        out.append(torch.log_softmax(last_token_logits(model, chunk, pad_id)[:, :text_vocab], dim=-1).cpu())
    return torch.cat(out)


@torch.no_grad()
def accuracy(model: torch.nn.Module, examples: Sequence[Example], pad_id: int, batch_size: int = 16) -> float:
    """Share of examples whose greedy next token after the student ids is the answer token."""
    if not examples:
        return float("nan")
    hits = 0
    for start in range(0, len(examples), batch_size):
        chunk = examples[start : start + batch_size]
        predicted = last_token_logits(model, [e.student_ids for e in chunk], pad_id).argmax(dim=-1).cpu()
        hits += int(sum(int(p) == e.answer_id for p, e in zip(predicted, chunk)))
    return hits / len(examples)


@contextlib.contextmanager
def cpu_threads(count: int) -> Iterator[None]:
    """Run the block with `count` torch CPU threads, then restore the caller's count."""
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def distill(
    model: torch.nn.Module,
    first_new: int,
    train: Sequence[Example],
    evaluate: dict[str, Sequence[Example]],
    config: DistillConfig,
    pad_id: int,
    checkpoint_dir: Path,
    progress: Callable[[str], None] | None = None,
) -> TrainState:
    """Train the new embedding rows (index >= first_new) on `train`; resumes from `checkpoint_dir` if present.

    Runs with `config.threads` CPU threads (restored afterwards), so the result does not depend on the machine's cores.
    """
    from tqdm import tqdm  # lazy: tqdm

    with cpu_threads(config.threads):
        weight = model.get_input_embeddings().weight
        text_vocab = first_new
        teacher = teacher_log_probs(model, train, text_vocab, pad_id, config.batch_size)
        model.requires_grad_(False)
        weight.requires_grad_(True)
        base_rows = torch.arange(weight.shape[0]) < first_new
        weight.register_hook(lambda grad: grad.masked_fill(base_rows[:, None].to(grad.device), 0.0))
        optimizer = torch.optim.Adam([weight], lr=config.learning_rate, weight_decay=0.0)
        state = TrainState()
        checkpoint = checkpoint_dir / "checkpoint.pt"
        if checkpoint.is_file():
            saved = torch.load(checkpoint, weights_only=False)
            # The epoch count may differ: an epoch's update depends only on the seed, the epoch index and the rows so
            # far (no schedule), so a run stopped at epoch k equals epoch k of a longer run, and raising --epochs
            # extends it.
            others = {k: v for k, v in saved["config"].items() if k != "epochs"}
            if others != {k: v for k, v in asdict(config).items() if k != "epochs"}:
                raise ValueError(f"{checkpoint} was written with other settings {saved['config']}; use another "
                                 "folder.")
            if saved["epoch"] > config.epochs:
                raise ValueError(f"{checkpoint} is already at epoch {saved['epoch']}, past the {config.epochs} asked; "
                                 "use another folder, or ask for at least that many epochs.")
            with torch.no_grad():
                weight[first_new:] = saved["rows"]
            optimizer.load_state_dict(saved["optimizer"])
            state = TrainState(saved["epoch"], saved["history"])
            log.info("resuming distillation at epoch %d", state.epoch)
        for epoch in range(state.epoch, config.epochs):
            order = list(range(len(train)))
            random.Random(config.seed * 1000 + epoch).shuffle(order)
            total = 0.0
            with tqdm(total=len(order), desc=f"epoch {epoch + 1}/{config.epochs}", unit="prompt", leave=False) as bar:
                for start in range(0, len(order), config.batch_size):
                    idx = order[start : start + config.batch_size]
                    prompts = [train[i].student_ids for i in idx]
                    logits = last_token_logits(model, prompts, pad_id) / config.temperature
                    student = torch.log_softmax(logits, dim=-1)[:, :text_vocab]
                    target = teacher[idx].to(student.device)
                    loss = (target.exp() * (target - student)).sum(dim=-1).mean()
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                    total += float(loss) * len(idx)
                    bar.update(len(idx))
                    bar.set_postfix(kl=f"{float(loss):.3f}")
            model.eval()
            record = {"epoch": epoch + 1, "kl": total / len(order)}
            record.update({name: accuracy(model, examples, pad_id, config.batch_size) for name, examples in
                           evaluate.items()})
            state.history.append(record)
            state.epoch = epoch + 1
            if progress is not None:
                progress(json.dumps(record))
            snapshot = {"rows": weight[first_new:].detach().clone(), "optimizer": optimizer.state_dict(),
                        "epoch": state.epoch, "history": state.history, "config": asdict(config)}
            write_atomic(checkpoint, lambda handle: torch.save(snapshot, handle))
        weight.requires_grad_(False)
        return state


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch for a reproducible run."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
