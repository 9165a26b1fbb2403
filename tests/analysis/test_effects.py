"""Per-fact group effects: NaN-means over a group's traced positions."""


from __future__ import annotations

import numpy as np

from artifact.analysis.effects import group_effects
from artifact.core.names import GROUPS


def test_group_effects_nan_mean_over_untraced_positions():
    ie = np.arange(10 * 3, dtype=float).reshape(10, 3)
    ie[3] = np.nan  # an untraced middle subject token
    out = group_effects(ie, (2, 6))
    np.testing.assert_array_equal(out[GROUPS.index("middle_subject")], ie[4])
    np.testing.assert_array_equal(out[GROUPS.index("further")], ie[[7, 8]].mean(axis=0))
    one = group_effects(ie, (1, 2))
    assert np.isnan(one[GROUPS.index("middle_subject")]).all()
