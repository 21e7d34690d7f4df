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
