"""make evaluate's score of the published featured items against the true item preferences."""

from __future__ import annotations

import pandas as pd
import pytest

from demo.evaluate import score_featured_items


def test_featured_items_scored_against_true_preferences_by_hand():
    preferences = pd.DataFrame(
        {
            "user_id": ["u1"] * 4 + ["u2"] * 4,
            "item_id": ["a", "b", "c", "d", "e", "f", "g", "h"],
            "preference_rank": [1, 2, 3, 4] * 2,
            "pick_probability": [0.4, 0.3, 0.2, 0.1, 0.5, 0.2, 0.1, 0.05],
        }
    )
    assigned = pd.DataFrame(
        {
            "user_id": ["u1", "u2", "u3"],
            "promo_id": ["p1", "p2", "none"],
            "featured_item_ids": ["a,d,z", "f,g,e", None],
        }
    )
    got = score_featured_items(preferences, assigned)
    assert got["offers"] == 2
    assert got["recall_at_3"] == pytest.approx((1 + 3) / 6)  # u1: a; u2: e, f, g
    assert got["true_top10_share"] == pytest.approx(5 / 6)  # z is not among u1's preferences
    assert got["pick_probability"] == pytest.approx((0.4 + 0.1 + 0.8) / 2)
    assert got["oracle_pick_probability"] == pytest.approx((0.9 + 0.8) / 2)
