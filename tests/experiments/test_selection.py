"""The selection rule of the profiles that trace a subset: round robin over relations, best-populated facts first,
a fixed held-out share for the embedded models, deterministic."""

from __future__ import annotations

from types import SimpleNamespace

from artifact.core.names import GROUPS
from artifact.experiments.selection import Candidate, candidates, describe, populated_groups, select_facts

ALL = frozenset(GROUPS)
SOME = frozenset(("first_subject", "last_subject", "last"))


def pool() -> list[Candidate]:
    """Three relations in file order P1 (6 facts), P2 (2), P3 (4); every third fact held out; P1's first facts
    populate fewer groups than its later ones."""
    out = []
    relations = ["P1"] * 6 + ["P2"] * 2 + ["P3"] * 4
    for order, relation in enumerate(relations):
        groups = SOME if (relation == "P1" and order < 3) else ALL
        out.append(Candidate(str(100 + order), relation, order, groups, "held_out" if order % 3 == 2 else "train"))
    return out


def test_round_robin_over_relations_with_best_populated_first():
    chosen = select_facts([c for c in pool() if c.stratum == "train"], 5)
    relations = [c.relation for c in sorted(chosen, key=lambda c: (c.relation, c.order))]
    assert sorted(set(relations)) == ["P1", "P2", "P3"]  # every relation before any gets a second fact
    p1 = [c.known_id for c in chosen if c.relation == "P1"]
    assert p1 == ["103", "104"]  # P1's fully populated facts (orders 3, 4) before its sparse first facts
    assert [c.order for c in chosen] == sorted(c.order for c in chosen)  # file order


def test_the_held_out_share_and_filling_in():
    facts = pool()
    chosen = select_facts(facts, 8, held_out_share=0.25)
    assert sum(c.stratum == "held_out" for c in chosen) == 2
    assert len(chosen) == 8 and len({c.known_id for c in chosen}) == 8
    few_train = [c for c in facts if c.stratum == "held_out" or c.order in (0, 1)]  # 2 training facts left
    chosen = select_facts(few_train, 5, held_out_share=0.25)
    assert len(chosen) == 5 and sum(c.stratum == "train" for c in chosen) == 2  # held-out facts fill in
    assert select_facts(facts, None) == sorted(facts, key=lambda c: c.order)
    assert select_facts(facts, 8, 0.25) == select_facts(list(reversed(facts)), 8, 0.25)  # input order irrelevant


def test_candidates_from_prompts_and_what_is_recorded():
    facts = [SimpleNamespace(known_id=i, relation_id=r) for i, r in ((1, "P1"), (2, "P1"), (3, "P2"), (4, "P2"))]

    def prompt(n_tokens, subject):  # a TracePrompt's fields the rule reads
        return SimpleNamespace(input_ids=tuple(range(n_tokens)), subject_range=subject, last_position=n_tokens - 1)

    prompts = {"t2t": {"1": prompt(8, (1, 4)), "2": prompt(5, (1, 2)), "3": prompt(8, (1, 4)), "4": prompt(8, (1, 4))},
               "s2t": {"1": prompt(40, (2, 20)), "2": prompt(40, (2, 20)), "3": prompt(40, (2, 39))}}
    assert populated_groups(prompt(5, (1, 2))) == {"first_subject", "last_subject", "first_subsequent", "further",
                                                   "last"}
    found = candidates(facts, prompts, known_both=[1, 2, 3, 4], held_out=[3])
    by_id = {c.known_id: c for c in found}
    assert set(by_id) == {"1", "2", "3"}  # 4 has no S->T prompt
    assert by_id["1"].groups == ALL  # populated in both arms
    assert "middle_subject" not in by_id["2"].groups  # a two-token subject in T->T
    assert "further" not in by_id["3"].groups and by_id["3"].stratum == "held_out"  # S->T subject reaches the end
    record = describe(select_facts(found, 2, 0.5), found, 2, 0.5)
    assert record["relations"] == {"P1": 1, "P2": 1} and record["strata"] == {"held_out": 1, "train": 1}
    assert record["all_groups_populated"] == 1 and "round robin" in record["rule"]
