"""Partners for symmetric token replacement (issue 30): each fact's subject is replaced by another fact's subject of
the same length (text: token count; speech: unit count) and with another answer. Pure Python, torch-free.

The choice is deterministic and independent of the input order: within a length group, facts are taken in order of
their keys, and each fact's partner is the first fact after it (cyclically) whose answer token and subject tokens
differ from its own, preferring one of the same relation (its subject then fits the prompt's template, and the
partner's answer is a plausible alternative for the logit difference). A fact without such a partner is skipped, and
reported.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Hashable, Sequence


@dataclass(frozen=True)
class Candidate:
    """One fact as token replacement sees it."""

    key: Hashable  # the fact's id (known_id); distinct. Ordered as numbers where they are integers, else as text
    subject_ids: tuple[int, ...]  # [subject_len] the subject's tokens in its prompt (text tokens or speech units)
    answer_id: int  # the fact's answer token
    relation: str = ""  # the fact's relation (preferred for the partner); "" = no preference


@dataclass(frozen=True)
class Pairing:
    """Each paired fact's partner, and the facts skipped for lack of one (in key order)."""

    partners: dict[Hashable, Hashable]  # fact key -> partner key
    skipped: tuple[Hashable, ...]
    same_relation: int  # how many partners share their fact's relation

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (keys as given), for storing beside results."""
        return {"partners": [[k, v] for k, v in self.partners.items()], "skipped": list(self.skipped),
                "n_paired": len(self.partners), "n_skipped": len(self.skipped), "same_relation": self.same_relation}


def _order(key: Hashable) -> tuple:
    """Sort key of a fact key: integers (and integer strings) numerically, before any other key as text."""
    try:
        return (0, int(key), "")  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return (1, 0, str(key))


def _usable(fact: Candidate, other: Candidate) -> bool:
    return other.answer_id != fact.answer_id and other.subject_ids != fact.subject_ids


def pair_facts(candidates: Sequence[Candidate]) -> Pairing:
    """Partners for every fact that has one (same subject length, another answer token, other subject tokens)."""
    keys = [c.key for c in candidates]
    if len(set(keys)) != len(keys):
        repeated = sorted({k for k in keys if keys.count(k) > 1}, key=str)
        raise ValueError(f"fact keys must be distinct; repeated: {repeated}")
    if any(len(c.subject_ids) == 0 for c in candidates):
        raise ValueError("every fact needs a non-empty subject span to be replaced")
    groups: dict[int, list[Candidate]] = defaultdict(list)
    for candidate in candidates:
        groups[len(candidate.subject_ids)].append(candidate)
    partners: dict[Hashable, Hashable] = {}
    same = 0
    for group in groups.values():
        group.sort(key=lambda c: _order(c.key))
        n = len(group)
        for i, fact in enumerate(group):
            ring = [group[(i + j) % n] for j in range(1, n)]
            usable = [other for other in ring if _usable(fact, other)]
            preferred = [other for other in usable if fact.relation and other.relation == fact.relation]
            choice = (preferred or usable or [None])[0]
            if choice is not None:
                partners[fact.key] = choice.key
                same += bool(fact.relation) and choice.relation == fact.relation
    ordered = {c.key: partners[c.key] for c in sorted(candidates, key=lambda c: _order(c.key)) if c.key in partners}
    skipped = tuple(sorted((c.key for c in candidates if c.key not in partners), key=_order))
    return Pairing(ordered, skipped, int(same))


__all__ = ["Candidate", "Pairing", "pair_facts"]
