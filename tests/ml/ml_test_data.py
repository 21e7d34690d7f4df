"""Synthetic logged exposures with planted effects, for tests of the ml package."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml.feature_spec import NUMERIC_FEATURES

PLANTED_ARMS = ["promo_a", "promo_b"]
HIGH_SPEND = 50.0


def planted_exposures(n_rows: int, seed: int = 0) -> pd.DataFrame:
    """Logged exposures where promo_a lifts conversion 0.10 -> 0.40 only for spend_30d > 50.

    promo_b lifts conversion a little for everyone; none converts at 0.10. Logging was not
    uniform (propensity 0.5 / 0.2 / 0.3), and margin and discount depend on the arm.
    """
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({name: rng.poisson(3, n_rows).astype(float) for name in NUMERIC_FEATURES})
    frame["spend_30d"] = rng.exponential(HIGH_SPEND, n_rows)
    frame["days_since_last_order"] = np.where(rng.random(n_rows) < 0.2, 999, rng.integers(0, 90, n_rows))
    frame["top_category"] = rng.choice(["shoes", "books", "toys", "unknown"], n_rows)
    frame["user_id"] = [f"u{i}" for i in range(n_rows)]
    propensities = {"promo_a": 0.5, "promo_b": 0.2, "none": 0.3}
    frame["promo_id"] = rng.choice(list(propensities), n_rows, p=list(propensities.values()))
    frame["propensity"] = frame["promo_id"].map(propensities)
    high = frame["spend_30d"].to_numpy() > HIGH_SPEND
    arm = frame["promo_id"].to_numpy()
    p_order = 0.10 + 0.30 * ((arm == "promo_a") & high) + 0.05 * (arm == "promo_b")
    converted = rng.random(n_rows) < p_order
    frame["converted"] = converted.astype(int)
    discount = np.select([arm == "promo_a", arm == "promo_b"], [6.0, 2.0], 0.0)
    frame["order_margin"] = np.where(converted, rng.normal(25.0, 5.0, n_rows) - discount, 0.0)
    frame["discount_amount"] = np.where(converted, discount, 0.0)
    frame["sent_ts"] = pd.Timestamp("2026-01-01", tz="UTC") + pd.to_timedelta(np.arange(n_rows) * 60, unit="s")
    return frame


def category_preference_shop(
    n_users: int = 200,
    n_items: int = 60,
    n_categories: int = 6,
    n_days: int = 10,
    events_per_user: int = 20,
    seed: int = 0,
) -> dict:
    """Item interactions where each user draws 85 % of their items from one preferred category.

    Items are ``i000..`` with category ``cat{j % n_categories}``; within a category the
    item choice is Zipf-like (shared by everyone), and the preferred categories are skewed
    (cat0 most common), so global popularity is a real but weaker baseline than knowing a
    user's category. Returns interactions, user_features, items and as_of (the day after
    the last simulated day).
    """
    rng = np.random.default_rng(seed)
    item_ids = np.array([f"i{j:03d}" for j in range(n_items)])
    item_category = np.arange(n_items) % n_categories
    items = pd.DataFrame(
        {
            "item_id": item_ids,
            "category": [f"cat{c}" for c in item_category],
            "price": np.round(rng.lognormal(3.0, 0.5, n_items), 2),
        }
    )
    preference_share = np.linspace(2.0, 1.0, n_categories)
    preferred = rng.choice(n_categories, n_users, p=preference_share / preference_share.sum())
    per_category = n_items // n_categories
    within = 1.0 / (1.0 + np.arange(per_category))
    n = n_users * events_per_user
    user = np.repeat(np.arange(n_users), events_per_user)
    category = np.where(rng.random(n) < 0.85, preferred[user], rng.integers(0, n_categories, n))
    position = rng.choice(per_category, n, p=within / within.sum())
    item = position * n_categories + category  # item j has category j % n_categories
    start = pd.Timestamp("2026-03-01", tz="UTC")
    interactions = pd.DataFrame(
        {
            "user_id": [f"u{u:04d}" for u in user],
            "item_id": item_ids[item],
            "event_ts": start + pd.to_timedelta(rng.uniform(0, n_days * 86400, n), unit="s"),
            "event_type": rng.choice(["view", "click", "add_to_cart", "purchase"], n, p=[0.6, 0.2, 0.12, 0.08]),
        }
    )
    user_ids = [f"u{u:04d}" for u in range(n_users)]
    user_features = pd.DataFrame(
        {
            "user_id": user_ids,
            "tenure_days": rng.integers(1, 500, n_users),
            "views_30d": rng.poisson(15, n_users),
            "top_category": "ignored",
        }
    )
    return {
        "interactions": interactions,
        "user_features": user_features,
        "items": items,
        "as_of": (start + pd.Timedelta(days=n_days)).date(),
        "preferred_category": dict(zip(user_ids, [f"cat{c}" for c in preferred])),
    }
