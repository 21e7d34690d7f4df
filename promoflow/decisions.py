"""Nightly decision stages: train the response model, then assign one arm per user.

Training data are the matured, randomised past exposures (``analytics.fct_promo_outcomes``)
joined point-in-time with Feast features; scoring reads every user's features in
bulk from the offline store. Decisions are staged in the lake; only
``promoflow.publish`` writes what marketing sees.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from promoflow import feature_store
from promoflow.settings import Settings
from promoflow.warehouse import ANALYTICS_SCHEMA, RAW_SCHEMA, Warehouse

log = logging.getLogger(__name__)

NONE_ARM = "none"
TRAINING_WINDOW_DAYS = 60
FEATURED_ITEMS_PER_OFFER = 3


def staged_assignments_path(settings: Settings, run_date: date) -> Path:
    return Path(settings.lake_dir) / "assignments" / f"run_date={run_date.isoformat()}" / "assignments.parquet"


# ------------------------------------------------------------------------------ training
def training_frame(settings: Settings, run_date: date) -> pd.DataFrame:
    """Matured exposures of the training window with point-in-time features and outcomes."""
    window_start = run_date - timedelta(days=TRAINING_WINDOW_DAYS)
    with Warehouse(settings) as wh:
        outcomes = wh.query_arrow(
            f"""select exposure_id, user_id, promo_id, sent_ts as event_timestamp, propensity,
                       converted, order_margin, discount_amount
                from {ANALYTICS_SCHEMA}.fct_promo_outcomes
                where is_matured and sent_ts >= ?
                order by sent_ts, exposure_id""",
            [window_start],
        ).to_pandas()
    if outcomes.empty:
        return outcomes
    joined = feature_store.historical_features(settings, outcomes)
    # Feast returns rows in its own order; training splits by time, so restore it.
    return joined.sort_values(["event_timestamp", "exposure_id"], kind="stable").reset_index(drop=True)


def _data_hash(frame: pd.DataFrame) -> str:
    cols = ["exposure_id", "promo_id", "converted", "order_margin", "discount_amount"]
    payload = pd.util.hash_pandas_object(frame[cols], index=False).values.tobytes()
    return hashlib.sha256(payload).hexdigest()


def train(settings: Settings, run_date: date) -> dict:
    """Train the promo response model; returns the stored model version (or None with the reason)."""
    from ml.feature_spec import NUMERIC_FEATURES
    from ml.model_store import save_model_version
    from ml.response_model import train_response_model

    frame = training_frame(settings, run_date)
    if frame.empty:
        return {"model_version": None, "reason": "no matured exposures to learn from", "rows": 0}
    missing = frame[NUMERIC_FEATURES].isna().any(axis=1)
    if missing.all():
        return {"model_version": None, "reason": "no exposure has features within the feature TTL", "rows": 0}
    frame = frame.loc[~missing].reset_index(drop=True)
    with Warehouse(settings) as wh:
        catalogue = [r[0] for r in wh.query(f"select promo_id from {RAW_SCHEMA}.promotions order by promo_id")]
    logged = set(frame["promo_id"])
    arms = [p for p in catalogue if p in logged]
    model = train_response_model(frame, arms, seed=settings.training_seed, deterministic=True)
    data_hash = _data_hash(frame)
    with tempfile.TemporaryDirectory(prefix="promoflow-model-") as tmp:
        model.save(tmp)
        version = save_model_version(tmp, settings.model_store_uri, run_date, data_hash, endpoint_url=settings.s3_endpoint_url or None)
    return {
        "model_version": version,
        "rows": int(len(frame)),
        "rows_without_features": int(missing.sum()),
        "arms": model.arms,
        "metrics": model.training_metrics,
    }


# ---------------------------------------------------------------------------- assignment
def _top_items(item_features: pd.DataFrame) -> tuple[dict[str, str], str]:
    """Most purchased items per category and overall, comma-separated (the recommender issue replaces this)."""
    ranked = item_features.sort_values(["category", "popularity_rank_in_category", "item_id"])
    by_category = ranked.groupby("category")["item_id"].apply(lambda ids: ",".join(ids.head(FEATURED_ITEMS_PER_OFFER))).to_dict()
    overall = item_features.sort_values(["purchases_30d", "views_30d", "item_id"], ascending=[False, False, True])
    return by_category, ",".join(overall["item_id"].head(FEATURED_ITEMS_PER_OFFER))


def assign(settings: Settings, run_date: date, model_version: str | None) -> dict:
    """Score users x arms, allocate within the budget, hold out, render delivery; stage the rows."""
    from ml import delivery, policy

    with Warehouse(settings) as wh:
        users = wh.query_arrow(f"select user_id, user_key, device from {RAW_SCHEMA}.users order by user_id").to_pandas()
        promos = wh.query_arrow(f"select * from {RAW_SCHEMA}.promotions order by promo_id").to_pandas()
        items = wh.query_arrow(
            f"select i.item_id, i.category, f.views_30d, f.purchases_30d, f.popularity_rank_in_category "
            f"from {RAW_SCHEMA}.item_features f join {RAW_SCHEMA}.items i using (item_id) where f.as_of = ?",
            [run_date],
        ).to_pandas()
    features = feature_store.scoring_features(settings, users["user_id"].tolist(), run_date)
    features = users.merge(features.drop(columns=["event_timestamp"]), on="user_id", how="left", validate="one_to_one")

    if model_version is None:
        arms = [NONE_ARM]
        margin = np.zeros((len(users), 1))
        cost = np.zeros((len(users), 1))
        p_order = np.zeros((len(users), 1))
    else:
        from ml.model_store import load_model_version
        from ml.response_model import ResponseModel

        with tempfile.TemporaryDirectory(prefix="promoflow-model-") as tmp:
            local = load_model_version(settings.model_store_uri, model_version, tmp, endpoint_url=settings.s3_endpoint_url or None)
            model = ResponseModel.load(local)
        predictions = model.predict(features)
        arms, margin, cost, p_order = predictions.arms, predictions.expected_incremental_margin, predictions.expected_cost, predictions.p_order
    none_index = arms.index(NONE_ARM)

    promo_rows = promos.set_index("promo_id")
    active = np.array(
        [arm == NONE_ARM or (promo_rows.loc[arm, "active_from"] <= run_date <= promo_rows.loc[arm, "active_to"]) for arm in arms]
    )
    has_features = features["tenure_days"].notna().to_numpy()
    eligible = np.broadcast_to(active, margin.shape) & has_features[:, None]
    allocation = policy.allocate(margin, cost, settings.budget, eligible, none_index)
    campaign = f"holdout-{run_date:%Y-%m}"  # stable per user within a calendar month
    is_holdout = policy.holdout_mask(users["user_id"].to_numpy(), settings.holdout_share, campaign)
    chosen = policy.apply_holdout(allocation.arm_index, is_holdout, none_index)
    propensity = policy.chosen_arm_propensity(allocation.arm_index, settings.holdout_share, none_index, is_holdout)

    rows = np.arange(len(users))
    chosen_ids = np.array(arms, dtype=object)[chosen]
    is_offer = chosen != none_index
    expected_cost = np.where(is_offer, cost[rows, chosen], 0.0)
    expected_margin = np.where(is_offer, margin[rows, chosen], 0.0)
    top_by_category, top_overall = _top_items(items)
    featured = features["top_category"].map(top_by_category).fillna(top_overall)

    channels, messages, featured_ids, reasons, send_hours = [], [], [], [], []
    for i in rows:
        greedy = int(allocation.arm_index[i])
        preferred_hour = features.at[i, "preferred_hour"]
        send_hours.append(int(preferred_hour) if pd.notna(preferred_hour) else 10)
        if not is_offer[i]:
            channels.append(None)
            messages.append(None)
            featured_ids.append(None)
            if is_holdout[i]:
                reasons.append(f"holdout ({settings.holdout_share:.0%} measurement group, {campaign})")
            elif model_version is None:
                reasons.append("no model: no matured randomised exposures to learn from")
            elif not has_features[i]:
                reasons.append("no features within TTL")
            else:
                reasons.append("no arm with positive expected incremental margin within budget")
            continue
        promo = promo_rows.loc[chosen_ids[i]].to_dict() | {"promo_id": chosen_ids[i]}
        category = promo.get("category")
        item_ids = top_by_category.get(category, top_overall) if category else featured.iloc[i]
        channels.append(delivery.choose_channel(promo.get("channel"), users.at[i, "device"]))
        messages.append(delivery.render_message(promo, run_date + timedelta(days=int(promo["valid_days"])), item_ids.split(",") if item_ids else None))
        featured_ids.append(item_ids or None)
        reasons.append(
            delivery.reason_codes(
                float(margin[i, greedy]), float(cost[i, greedy]), float(p_order[i, none_index]), float(p_order[i, greedy])
            )
        )

    table = pa.table(
        {
            "run_date": pa.array([run_date] * len(users), pa.date32()),
            "user_key": pa.array(users["user_key"], pa.string()),
            "user_id": pa.array(users["user_id"], pa.string()),
            "promo_id": pa.array(chosen_ids.tolist(), pa.string()),
            "channel": pa.array(channels, pa.string()),
            "send_hour": pa.array(send_hours, pa.int32()),
            "message": pa.array(messages, pa.string()),
            "featured_item_ids": pa.array(featured_ids, pa.string()),
            "expected_incremental_margin": pa.array(expected_margin, pa.float64()),
            "expected_cost": pa.array(expected_cost, pa.float64()),
            "propensity": pa.array(propensity, pa.float64()),
            "is_holdout": pa.array(is_holdout, pa.bool_()),
            "is_exploration": pa.array(np.zeros(len(users), dtype=bool), pa.bool_()),
            "reason": pa.array(reasons, pa.string()),
            "policy_version": pa.array([settings.policy_version] * len(users), pa.string()),
            "model_version": pa.array([model_version or "none"] * len(users), pa.string()),
        }
    )
    path = staged_assignments_path(settings, run_date)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(".assignments.parquet.tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)
    return {
        "users": len(users),
        "offers": int(is_offer.sum()),
        "holdout": int(is_holdout.sum()),
        "expected_cost": float(expected_cost.sum()),
        "expected_incremental_margin": float(expected_margin.sum()),
        "lambda": float(allocation.lambda_),
    }
