"""Nightly recommender stage: train the two-tower model, choose the featured items' source.

``train`` (task ``train_recommender``, queue ``gpu``) reads the lake: clean item events of
the training window and the held-out day D-1, the clean items with their Spark item
features as of D-1, and the Spark user features as of D-1 (so the held-out day leaks into
no input). It trains ``ml.recommender``, decides tonight's source of ``featured_item_ids``
on held-out recall (``ml.recommender.choose_featured_source``: the recommender only when it
beats the category rule), and stores the version with that decision in its model card
under ``recommender/{version}`` in the model store.

``featured_for_offers`` (called by ``assign``) scores the users who get an offer with the
stored version, features and sequences as of D (the Spark tables), an offer's category limit
kept; it returns None when tonight's source is the rule.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from promoflow.settings import Settings

log = logging.getLogger(__name__)

RULE = "category_rule"
EVENT_COLUMNS = ["event_id", "user_id", "item_id", "event_type", "event_ts"]


def clean_events(settings: Settings, run_date: date, days: int) -> pd.DataFrame:
    """Clean events with an item of the ``days`` days before ``run_date`` (never the run date)."""
    root = Path(settings.lake_dir) / "clean" / "events"
    frames = []
    for offset in range(days, 0, -1):
        folder = root / f"dt={(run_date - timedelta(days=offset)).isoformat()}"
        for path in sorted(folder.glob("*.parquet")):
            frames.append(pq.read_table(path, columns=EVENT_COLUMNS).to_pandas())
    if not frames:
        return pd.DataFrame(columns=EVENT_COLUMNS)
    events = pd.concat(frames, ignore_index=True)
    return events.loc[events["item_id"].notna()].reset_index(drop=True)


def lake_features(settings: Settings, table: str, as_of: date) -> pd.DataFrame | None:
    """``{lake}/features/{table}/as_of=D`` (the Spark job's output), or None when absent."""
    folder = Path(settings.lake_dir) / "features" / table / f"as_of={as_of.isoformat()}"
    if not folder.exists():
        return None
    frame = pq.read_table(folder).to_pandas()
    return frame.drop(columns=[c for c in ("as_of",) if c in frame.columns])


def items_with_features(settings: Settings, as_of: date) -> pd.DataFrame:
    """Clean items (id, category, price) with their numeric Spark item features as of ``as_of``."""
    items = pq.read_table(
        Path(settings.lake_dir) / "clean" / "items" / "items.parquet", columns=["item_id", "category", "price"]
    ).to_pandas()
    features = lake_features(settings, "item_features", as_of)
    if features is None or features.empty:
        return items
    numeric = [
        c
        for c in features.columns
        if c not in items.columns
        and pd.api.types.is_numeric_dtype(features[c])
        and not pd.api.types.is_bool_dtype(features[c])
    ]
    merged = items.merge(features[["item_id", *numeric]].drop_duplicates("item_id"), on="item_id", how="left")
    merged[numeric] = merged[numeric].fillna(0.0)
    return merged


def train(settings: Settings, run_date: date) -> dict:
    """Train, evaluate on D-1 and store the recommender; decide tonight's featured items' source."""
    from ml.recommender import (
        RecommenderConfig,
        choose_featured_source,
        interactions_hash,
        save_recommender_version,
        train_recommender,
    )
    from promoflow.decisions import json_safe

    config = RecommenderConfig()
    holdout_day = run_date - timedelta(days=config.holdout_days)
    events = clean_events(settings, run_date, config.training_window_days + config.holdout_days)
    before_holdout = pd.to_datetime(events["event_ts"], utc=True) < pd.Timestamp(holdout_day.isoformat(), tz="UTC")
    if not before_holdout.any():
        return {
            "recommender_version": None,
            "featured_items_source": RULE,
            "reason": f"no item events before the held-out day {holdout_day}: nothing to train the recommender on",
        }
    user_features = lake_features(settings, "user_features", holdout_day)
    items = items_with_features(settings, holdout_day)
    model, metrics = train_recommender(
        events, user_features, None, items, run_date, seed=settings.training_seed, deterministic=True, config=config
    )
    selection = choose_featured_source(metrics)
    metrics["selection"] = selection  # metrics is the model's metadata["metrics"]: it goes into the card
    version = save_recommender_version(
        model,
        settings.model_store_uri,
        run_date,
        interactions_hash(events),
        endpoint_url=settings.s3_endpoint_url or None,
    )
    log.info("recommender %s: featured items from %s (%s)", version, selection["source"], selection["reason"])
    return json_safe(
        {
            "recommender_version": version,
            "featured_items_source": selection["source"],
            "reason": selection["reason"],
            "selection": selection,
            "recall": {name: metrics.get(name) for name in ("model", "popularity", "category_popularity")},
            "versus_category_popularity": metrics.get("versus_category_popularity"),
            "n_users_evaluated": metrics.get("n_users_evaluated"),
            "n_training_pairs": metrics["n_training_pairs"],
            "n_training_pairs_available": metrics["n_training_pairs_available"],
            "user_features_as_of": holdout_day.isoformat() if user_features is not None else None,
            "examples_per_second": metrics["examples_per_second"],
            "train_seconds": metrics["train_seconds"],
            "device": metrics["device"],
            "strategy": metrics["strategy"],
            "mixed_precision": metrics["mixed_precision"],
        }
    )


def featured_for_offers(
    settings: Settings,
    run_date: date,
    recommender: dict | None,
    user_ids: Sequence[str],
    is_offer: np.ndarray,
    offer_categories: Sequence[Any],
    k: int,
) -> np.ndarray | None:
    """Per user, the recommender's comma-separated top-``k`` items for offer rows (None elsewhere,
    and where the category limit has no items); None when tonight's source is the rule.

    ``offer_categories``: per user, the chosen promo's category limit (None = no limit).
    """
    if (
        not recommender
        or recommender.get("featured_items_source") != "recommender"
        or not recommender.get("recommender_version")
    ):
        return None
    from ml.recommender import featured_items, last_item_sequences, load_recommender_version

    out = np.full(len(user_ids), None, dtype=object)
    offers = np.flatnonzero(np.asarray(is_offer, dtype=bool))
    if not offers.size:
        return out
    with tempfile.TemporaryDirectory(prefix="promoflow-recommender-") as tmp:
        model = load_recommender_version(
            settings.model_store_uri,
            recommender["recommender_version"],
            tmp,
            endpoint_url=settings.s3_endpoint_url or None,
        )
    user_features = lake_features(settings, "user_features", run_date)
    sequences = lake_features(settings, "user_sequences", run_date)
    if sequences is None:
        sequences = last_item_sequences(clean_events(settings, run_date, 90), run_date)
    offer_users = [str(u) for u in np.asarray(user_ids, dtype=object)[offers]]
    categories = [
        None if c is None or (isinstance(c, float) and np.isnan(c)) or c == "" else str(c)
        for c in np.asarray(offer_categories, dtype=object)[offers]
    ]
    items = featured_items(model, offer_users, user_features, sequences, categories, k)
    out[offers] = [i or None for i in items]
    return out
