"""The feature spec shared by training and scoring of the promo response models.

Columns are those of the ``user_features`` table (docs/ARCHITECTURE.md), minus ids and
dates. Both the TensorFlow model and the numpy baseline turn a DataFrame into model inputs
through :func:`numeric_matrix` and :func:`categorical_column`, so a column added here is
picked up by training and scoring together.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

FEATURE_SPEC_VERSION = 2

ID_COLUMNS: list[str] = ["user_id", "as_of"]

NUMERIC_FEATURES: list[str] = [
    "tenure_days",
    "days_since_last_event",
    "days_since_last_order",
    "days_since_last_exposure",
    "orders_7d",
    "orders_30d",
    "orders_90d",
    "spend_7d",
    "spend_30d",
    "spend_90d",
    "views_30d",
    "carts_30d",
    "sessions_30d",
    "searches_30d",
    "events_per_session_30d",
    "view_to_cart_rate_30d",
    "cart_to_order_rate_30d",
    "avg_order_value_90d",
    "order_value_std_90d",
    "discount_order_share_90d",
    "exposures_30d",
    "events_90d",
    "cart_abandonment_rate_30d",
    "avg_viewed_price_90d",
    "purchased_to_viewed_price_ratio_90d",
    "exposures_90d",
    "redemptions_90d",
    "redemption_rate_90d",
    "redemption_rate_percent_off_90d",
    "redemption_rate_amount_off_90d",
    "redemption_rate_spend_threshold_90d",
    "redemption_rate_free_shipping_90d",
    "redemption_rate_gift_90d",
    "channel_engagement_email_90d",
    "channel_engagement_push_90d",
    "channel_engagement_sms_90d",
    "channel_engagement_in_app_90d",
    "preferred_hour",
]

CATEGORICAL_FEATURES: list[str] = ["top_category"]

# user_features' default for users without activity; also what a null category scores as.
UNKNOWN_CATEGORY = "unknown"

# Counts, amounts and day gaps are heavy-tailed (999 = never); sign(x) * log1p(|x|) keeps
# them on a scale a normalisation layer can handle.
NUMERIC_TRANSFORM = "signed_log1p"


def feature_spec_dict(
    numeric_features: Sequence[str] = NUMERIC_FEATURES,
    categorical_features: Sequence[str] = CATEGORICAL_FEATURES,
) -> dict:
    """The spec as plain JSON-able data, stored beside every trained model."""
    return {
        "version": FEATURE_SPEC_VERSION,
        "numeric_features": list(numeric_features),
        "categorical_features": list(categorical_features),
        "numeric_transform": NUMERIC_TRANSFORM,
        "unknown_category": UNKNOWN_CATEGORY,
    }


def check_feature_columns(
    frame: pd.DataFrame,
    numeric_features: Sequence[str] = NUMERIC_FEATURES,
    categorical_features: Sequence[str] = CATEGORICAL_FEATURES,
    *,
    what: str = "features",
) -> None:
    """Raise ValueError naming every spec column missing from ``frame``."""
    missing = [c for c in [*numeric_features, *categorical_features] if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{what}: missing feature columns {missing}; the frame must carry the user_features "
            "columns of docs/ARCHITECTURE.md (see ml.feature_spec)"
        )


def numeric_matrix(frame: pd.DataFrame, numeric_features: Sequence[str] = NUMERIC_FEATURES) -> np.ndarray:
    """[n, n_numeric] float32 matrix of transformed numeric features (before normalisation)."""
    check_feature_columns(frame, numeric_features, [], what="numeric features")
    values = frame[list(numeric_features)].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        columns = [numeric_features[j] for j in np.flatnonzero(bad.any(axis=0))]
        raise ValueError(
            f"numeric features {columns}: {int(bad.sum())} null, non-numeric or infinite values; "
            "user_features is never null by contract, so fix the upstream feature job"
        )
    return (np.sign(values) * np.log1p(np.abs(values))).astype(np.float32)


def categorical_column(frame: pd.DataFrame, name: str) -> np.ndarray:
    """[n] object array of strings; nulls and empty strings become ``UNKNOWN_CATEGORY``."""
    if name not in frame.columns:
        raise ValueError(f"categorical feature {name!r} missing from the frame")
    column = frame[name].astype("object")
    column = column.where(column.notna() & (column.astype(str) != ""), UNKNOWN_CATEGORY)
    return column.astype(str).to_numpy(dtype=object)
