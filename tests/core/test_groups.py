"""ROME's token groups of a prompt, and the representative positions of affordable (speech) traces."""


from __future__ import annotations

import pytest

from artifact.core.groups import positions_for, representative_positions, token_groups


def test_groups_multi_token_subject_in_the_middle():
    # tokens: 0 BOS, 1 The, [2 3 4 5] subject, 6 is, 7 in, 8 the, 9 city (last)
    g = token_groups(10, (2, 6))
    assert g == {"first_subject": [2], "middle_subject": [3, 4], "last_subject": [5], "first_subsequent": [6],
                 "further": [7, 8], "last": [9]}


def test_groups_one_token_subject_first_equals_last_middle_empty():
    g = token_groups(6, (1, 2))
    assert g["first_subject"] == g["last_subject"] == [1]
    assert g["middle_subject"] == []
    assert g["first_subsequent"] == [2] and g["further"] == [3, 4] and g["last"] == [5]


def test_groups_two_token_subject_has_no_middle():
    assert token_groups(6, (1, 3))["middle_subject"] == []


def test_groups_subject_at_the_start_of_the_prompt():
    g = token_groups(5, (0, 2))
    assert g["first_subject"] == [0] and g["last_subject"] == [1] and g["first_subsequent"] == [2]
    assert g["further"] == [3] and g["last"] == [4]


def test_groups_subject_right_before_the_last_token():
    g = token_groups(5, (1, 4))  # subject 1..3, last token 4 is the first subsequent token too
    assert g["first_subsequent"] == [4] == g["last"]
    assert g["further"] == []


def test_groups_subject_at_the_end_of_the_prompt():
    g = token_groups(5, (2, 5))  # the subject reaches the last token
    assert g["last_subject"] == [4] == g["last"]
    assert g["first_subsequent"] == [] and g["further"] == []


def test_groups_last_position_other_than_final_token_and_bad_ranges():
    g = token_groups(8, (1, 3), last_position=5)
    assert g["last"] == [5] and g["further"] == [4]
    with pytest.raises(ValueError, match="subject_range"):
        token_groups(5, (3, 3))
    with pytest.raises(ValueError, match="last_position"):
        token_groups(5, (1, 2), last_position=7)


def test_representative_positions_cover_every_group():
    positions = representative_positions(40, (3, 20), k=2)
    g = token_groups(40, (3, 20))
    for name, members in g.items():
        assert set(members) & set(positions), name
    assert len(positions) == 1 + 2 + 1 + 1 + 2 + 1
    assert positions_for("all", 40, (3, 20)) is None
    assert positions_for("representatives:100", 10, (1, 4)) == tuple(range(1, 10))
    with pytest.raises(ValueError, match="representatives:K"):
        positions_for("some", 10, (1, 4))
