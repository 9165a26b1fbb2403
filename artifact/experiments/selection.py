"""Which facts a profile traces: one documented rule, the same for every model, recorded in `selection.json`.

The rule (`RULE`), applied to the facts known in both arms (the comparison's paired set), in file order:

1. Strata. For the embedded models, `held_out_share` of the facts come from the speech model's held-out facts (never
   distilled on) and the rest from its training facts, so that the comparison reports both side by side; if one
   stratum runs short, the other fills in. SpiritLM has one stratum.
2. Within a stratum, facts are grouped by relation (relations in the order they first appear in the file) and each
   relation's facts are ordered by how many of ROME's six token groups their prompts populate in both arms (a fact
   with a multi-token subject and tokens after it populates all six), then by file order.
3. Round robin over the relations: the best fact of every relation, then the second best of every relation, ...,
   until the stratum's quota is filled. So a profile spreads over as many relations as it has facts for, and every
   token group is populated for most facts wherever the relation allows it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from artifact.core.groups import token_groups
from artifact.core.names import GROUPS

RULE = ("facts known in both arms; for the embedded models a fixed share from the speech model's held-out facts, the "
        "rest from its training facts; within each share, round robin over relations (in file order), each "
        "relation's facts ordered by the number of ROME token groups their prompts populate in both arms, then by "
        "file order (artifact.experiments.selection)")


def populated_groups(prompt: Any) -> set[str]:
    """The ROME token groups a TracePrompt populates (non-empty position lists)."""
    groups = token_groups(len(prompt.input_ids), tuple(prompt.subject_range), prompt.last_position)
    return {name for name, positions in groups.items() if positions}


@dataclass(frozen=True)
class Candidate:
    """A fact known in both arms, with what the rule looks at."""

    known_id: str
    relation: str
    order: int  # position in the fact file
    groups: frozenset[str]  # token groups populated in both arms' prompts
    stratum: str  # 'train', 'held_out' or 'all'


def _round_robin(candidates: Sequence[Candidate], quota: int) -> list[Candidate]:
    """Up to `quota` candidates, one relation at a time (relations in file order), best-populated first."""
    by_relation: dict[str, list[Candidate]] = {}
    for c in sorted(candidates, key=lambda c: c.order):
        by_relation.setdefault(c.relation, []).append(c)
    queues = [sorted(facts, key=lambda c: (-len(c.groups), c.order)) for facts in by_relation.values()]
    chosen: list[Candidate] = []
    depth = 0
    while len(chosen) < quota and any(depth < len(q) for q in queues):
        for queue in queues:
            if depth < len(queue) and len(chosen) < quota:
                chosen.append(queue[depth])
        depth += 1
    return chosen


def select_facts(candidates: Sequence[Candidate], count: int | None, held_out_share: float = 0.0
                 ) -> list[Candidate]:
    """The facts a profile traces (`RULE`), in file order: all candidates when `count` is None."""
    if count is None:
        return sorted(candidates, key=lambda c: c.order)
    held = [c for c in candidates if c.stratum == "held_out"]
    rest = [c for c in candidates if c.stratum != "held_out"]
    want_held = min(len(held), round(count * held_out_share)) if held else 0
    chosen = _round_robin(rest, count - want_held)
    chosen += _round_robin(held, count - len(chosen))  # the held-out share, or more if training facts ran short
    if len(chosen) < count:  # held-out facts ran short: fill with more training facts
        chosen += _round_robin([c for c in rest if c not in chosen], count - len(chosen))
    return sorted(chosen, key=lambda c: c.order)


def candidates(facts: Sequence[Any], prompts: Mapping[str, Sequence[Any]], known_both: Iterable[Any],
               held_out: Iterable[Any] | None = None) -> list[Candidate]:
    """The candidates of the rule: facts known in both arms (`known_both`), with their relation, file order, the
    groups their prompts populate in every arm (`prompts`: arm -> TracePrompts, by fact), and their stratum."""
    both = {str(i) for i in known_both}
    held = None if held_out is None else {str(i) for i in held_out}
    per_fact: dict[str, list[set[str]]] = {}
    for arm_prompts in prompts.values():
        for fact_id, prompt in arm_prompts.items():
            per_fact.setdefault(str(fact_id), []).append(populated_groups(prompt))
    out = []
    for order, fact in enumerate(facts):
        key = str(fact.known_id)
        if key not in both or len(per_fact.get(key, ())) < len(prompts):  # a prompt in every arm
            continue
        groups = frozenset(set(GROUPS).intersection(*per_fact[key]))
        stratum = "all" if held is None else ("held_out" if key in held else "train")
        out.append(Candidate(key, fact.relation_id, order, groups, stratum))
    return out


def describe(chosen: Sequence[Candidate], pool: Sequence[Candidate], count: int | None,
             held_out_share: float) -> dict[str, Any]:
    """What selection.json records about the rule and its outcome."""
    relations: dict[str, int] = {}
    for c in chosen:
        relations[c.relation] = relations.get(c.relation, 0) + 1
    return {
        "rule": RULE,
        "count": count,
        "held_out_share": held_out_share,
        "candidates": len(pool),
        "relations": relations,
        "all_groups_populated": sum(len(c.groups) == len(GROUPS) for c in chosen),
        "strata": {s: sum(c.stratum == s for c in chosen) for s in sorted({c.stratum for c in pool})},
        "facts": [{"known_id": c.known_id, "relation": c.relation, "stratum": c.stratum,
                   "groups_populated": sorted(c.groups, key=GROUPS.index)} for c in chosen],
    }
