"""Nightly decision stages: train and select tonight's policy, then plan and stage one arm per user.

Training data are the matured, randomised past exposures (``analytics.fct_promo_outcomes``)
joined point-in-time with Feast features; their outcomes are the uncontaminated ones
(``outcome_*``: the window cut at the user's next offer), and exposures sent while an
older offer was still live are left out. Scoring reads every user's features in
bulk from the offline store. Decisions are staged in the lake; only
``promoflow.publish`` writes what marketing sees.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from promoflow import atomic, feature_store
from promoflow.contract import NONE_ARM, PROMO_ASSIGNMENTS
from promoflow.settings import Settings
from promoflow.warehouse import ANALYTICS_SCHEMA, RAW_SCHEMA, Warehouse

log = logging.getLogger(__name__)

TRAINING_WINDOW_DAYS = 60
# Training drops exposures sent under a live offer only while at least this share remains.
MIN_CLEAN_SHARE = 0.5
FEATURED_ITEMS_PER_OFFER = 3


def staged_assignments_path(settings: Settings, run_date: date) -> Path:
    return Path(settings.lake_dir) / "assignments" / f"run_date={run_date.isoformat()}" / "assignments.parquet"


# ------------------------------------------------------------------------------ training
def training_frame(settings: Settings, run_date: date) -> pd.DataFrame:
    """Matured exposures of the training window with point-in-time features and outcomes.

    Outcomes are censored at the user's next offer (``outcome_*`` of fct_promo_outcomes): a
    newer offer replaces or contaminates the live one, and with a few percent of users
    exposed every day many full windows are interrupted. ``window_days`` is the censored,
    fractional window (``outcome_days``), so margin per day stays comparable across rows;
    ``valid_days`` is the full window. Exposures sent while an older offer was still live
    (``had_live_offer_at_send``: a `none` there measures that offer, not "no offer") are left
    out: that was settled before the arm was drawn, so the kept rows stay randomised —
    unless that would leave fewer than ``MIN_CLEAN_SHARE`` of the rows (a shop whose offers
    overlap almost always): then all are kept, the contamination is accepted, and
    ``frame.attrs`` says so.
    """
    window_start = run_date - timedelta(days=TRAINING_WINDOW_DAYS)
    with Warehouse(settings) as wh:
        outcomes = wh.query_arrow(
            f"""select exposure_id, user_id, promo_id, sent_ts as event_timestamp, propensity,
                       outcome_converted as converted, outcome_order_margin as order_margin,
                       outcome_discount_amount as discount_amount, outcome_days as window_days,
                       valid_days, had_live_offer_at_send, discount_amount as full_discount_amount
                from {ANALYTICS_SCHEMA}.fct_promo_outcomes
                where is_matured and sent_ts >= ?
                order by sent_ts, exposure_id""",
            [window_start],
        ).to_pandas()
    under_live_offer = outcomes.pop("had_live_offer_at_send").fillna(False).astype(bool).to_numpy()
    drop_contaminated = (~under_live_offer).sum() >= MIN_CLEAN_SHARE * len(outcomes)
    if drop_contaminated:
        outcomes = outcomes.loc[~under_live_offer].reset_index(drop=True)
    else:
        log.warning(
            "%d of %d matured exposures were sent under a live offer; keeping them all (see training_frame)",
            int(under_live_offer.sum()),
            len(outcomes),
        )
    attrs = {
        "rows_sent_under_live_offer": int(under_live_offer.sum()),
        "dropped_rows_sent_under_live_offer": bool(drop_contaminated),
        "matured_rows": int(len(outcomes)),
    }
    outcomes = sample_users(outcomes, settings.training_max_rows, settings.training_seed)
    if outcomes.empty:
        outcomes.attrs.update(attrs)
        return outcomes
    joined = feature_store.historical_features(settings, outcomes)
    # Feast returns rows in its own order; training splits by time, so restore it.
    joined = joined.sort_values(["event_timestamp", "exposure_id"], kind="stable").reset_index(drop=True)
    as_of = pd.to_datetime(joined["event_timestamp"], utc=True).dt.tz_localize(None).dt.normalize()
    joined = normalise_window_counts(joined, as_of, _history_start(settings))
    joined.attrs.update(attrs)
    return joined


def sample_users(outcomes: pd.DataFrame, max_rows: int, seed: int) -> pd.DataFrame:
    """At most about ``max_rows`` rows: every row of a random share of the users (all rows when under it).

    A user is kept when a seeded hash of their id falls under max_rows / rows, so a re-run keeps
    the same users, a user's rows stay together (the folds group by user) and, the draw being
    independent of arms and outcomes, the kept rows are as randomised as the log.
    """
    if len(outcomes) <= max_rows:
        return outcomes
    key = f"{seed:016d}"[-16:]
    hashed = pd.util.hash_pandas_object(outcomes["user_id"].astype(str), index=False, hash_key=key).to_numpy()
    keep = hashed.astype(np.float64) / 2.0**64 < max_rows / len(outcomes)
    return outcomes.loc[keep].reset_index(drop=True)


# Count and sum features over a trailing window (the suffix says how many days): a shop's landing
# holds only so much history, so at an early send these windows saw fewer days than they name.
WINDOW_COUNT_PREFIXES = (
    "orders",
    "spend",
    "views",
    "carts",
    "sessions",
    "searches",
    "exposures",
    "events",
    "redemptions",
)


def normalise_window_counts(features: pd.DataFrame, as_of, history_start: date | None) -> pd.DataFrame:
    """Scale each trailing-window count to its full window: x W / min(W, days of history observed
    before ``as_of``). A feature as of day 10 of a new landing saw 10 of its 30 days; the night
    scores users with the whole window, and a model must compare like with like."""
    if history_start is None or features.empty:
        return features
    as_of = pd.to_datetime(pd.Series(as_of, index=features.index))
    observed = (as_of - pd.Timestamp(history_start)).dt.days.to_numpy(dtype=np.float64)
    out = features.copy()
    for column in features.columns:
        prefix, _, window = column.rpartition("_")
        if not (window.endswith("d") and window[:-1].isdigit() and prefix in WINDOW_COUNT_PREFIXES):
            continue
        days = float(window[:-1])
        scale = days / np.clip(observed, 1.0, days)
        out[column] = pd.to_numeric(features[column], errors="coerce") * scale
    return out


def _history_start(settings: Settings) -> date | None:
    """The first day the warehouse holds events for (the landing's history)."""
    with Warehouse(settings) as wh:
        rows = wh.query(f"select min(event_ts) from {RAW_SCHEMA}.events")
    first = rows[0][0] if rows else None
    if first is None:
        return None
    return first.date() if hasattr(first, "date") else date.fromisoformat(str(first)[:10])


def _data_hash(frame: pd.DataFrame) -> str:
    cols = ["exposure_id", "promo_id", "converted", "order_margin", "discount_amount", "window_days"]
    payload = pd.util.hash_pandas_object(frame[cols], index=False).values.tobytes()
    return hashlib.sha256(payload).hexdigest()


def _catalogue(settings: Settings) -> pd.DataFrame:
    with Warehouse(settings) as wh:
        return wh.query_arrow(f"select * from {RAW_SCHEMA}.promotions order by promo_id").to_pandas()


@dataclass
class TrainingSetup:
    """What the selection trains on, derived from the matured exposures and the catalogue (``training_setup``)."""

    frame: pd.DataFrame  # rows with features
    arms: list[str]  # logged catalogue promos (and none)
    window_days: dict[str, float]
    active: dict[str, bool]
    validation_candidates: np.ndarray  # [rows] bool: every arm's full window closed by run_date
    rows_without_features: int


@dataclass
class NothingToLearn:
    reason: str
    rows: int


def training_setup(frame: pd.DataFrame, promos: pd.DataFrame, run_date: date) -> TrainingSetup | NothingToLearn:
    """A pure function of the training frame and the catalogue: the setup, or why nothing can be learnt."""
    from ml.feature_spec import NUMERIC_FEATURES

    if frame.empty:
        return NothingToLearn("no matured exposures to learn from", 0)
    missing = frame[NUMERIC_FEATURES].isna().any(axis=1)
    if missing.all():
        return NothingToLearn("no exposure has features within the feature TTL", 0)
    kept = frame.loc[~missing].reset_index(drop=True)
    kept.attrs = dict(frame.attrs)
    logged = set(kept["promo_id"])
    arms = [p for p in promos["promo_id"] if p in logged]
    if not arms or NONE_ARM not in logged:
        return NothingToLearn("the log lacks 'none' or every catalogue promo: no contrast to learn", len(kept))
    window_days = {row.promo_id: float(row.valid_days) for row in promos.itertuples()}
    active = {row.promo_id: bool(row.active_from <= run_date <= row.active_to) for row in promos.itertuples()}
    # Held-out rows must have every arm's full window closed (see train_and_select): the
    # catalogue's longest and the logged full windows (valid_days; the control's is
    # control_window_days), not the censored window_days.
    longest_window = max([*window_days.values(), float(kept["valid_days"].max())])
    sent = pd.to_datetime(kept["event_timestamp"], utc=True)
    matured = (
        sent + pd.to_timedelta(longest_window, unit="D") <= pd.Timestamp(run_date.isoformat(), tz="UTC")
    ).to_numpy()
    return TrainingSetup(kept, arms, window_days, active, matured, int(missing.sum()))


def train(settings: Settings, run_date: date) -> dict:
    """Value the candidate policies on the matured exposures, choose tonight's by the written rule, store the version."""
    from ml import training
    from ml.model_store import save_model_version

    frame = training_frame(settings, run_date)
    contamination = dict(frame.attrs)
    promos = _catalogue(settings)
    setup = training_setup(frame, promos, run_date)
    if isinstance(setup, NothingToLearn):
        return {"model_version": None, "reason": setup.reason, "rows": setup.rows}
    with Warehouse(settings) as wh:
        n_users = int(wh.query(f"select count(*) from {RAW_SCHEMA}.users")[0][0])
    trained = training.train_and_select(
        setup.frame,
        setup.arms,
        setup.window_days,
        setup.active,
        seed=settings.training_seed,
        uncertainty_penalty=settings.uncertainty_penalty,
        gate_z=settings.gate_z,
        budget_per_user=exploit_budget(settings) / max(n_users, 1),
        rollout_share=settings.rollout_share,
        catalogue=promos.set_index("promo_id"),
        validation_candidates=setup.validation_candidates,
    )
    data_hash = _data_hash(setup.frame)
    # tonight's exploration reads it: an explorer holding a live offer would add a row training drops
    trained.selection_metrics["dropped_rows_sent_under_live_offer"] = bool(
        contamination.get("dropped_rows_sent_under_live_offer", False)
    )
    with tempfile.TemporaryDirectory(prefix="promoflow-model-") as tmp:
        trained.save(tmp, run_date=run_date, data_hash=data_hash)
        version = save_model_version(
            tmp, settings.model_store_uri, run_date, data_hash, endpoint_url=settings.s3_endpoint_url or None
        )
    return json_safe(
        {
            "model_version": version,
            "rows": int(len(setup.frame)),
            "rows_without_features": setup.rows_without_features,
            "matured_rows": contamination.get("matured_rows"),
            "rows_sent_under_live_offer": contamination.get("rows_sent_under_live_offer"),
            "dropped_rows_sent_under_live_offer": contamination.get("dropped_rows_sent_under_live_offer"),
            "arms": trained.arms,
            "production_model": trained.production,
            "status": trained.status,
            "gate": trained.gate,
            "selection": trained.selection_metrics,
        }
    )


def exploit_budget(settings: Settings) -> float:
    """The budget the published policy may spend: the night's, less the exploration reserve."""
    return settings.budget - exploration_reserve(settings)


def exploration_reserve(settings: Settings) -> float:
    return settings.budget * settings.exploration_budget_share if settings.exploration_rate > 0 else 0.0


def json_safe(value):
    """Task return values travel as JSON (XCom): NaN / inf become None, numpy scalars plain."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


# ---------------------------------------------------------------------------- assignment
def _top_items(item_features: pd.DataFrame) -> tuple[dict[str, str], str]:
    """Most purchased items per category and overall, comma-separated (the recommender issue replaces this)."""
    ranked = item_features.sort_values(["category", "popularity_rank_in_category", "item_id"])
    by_category = (
        ranked.groupby("category")["item_id"].apply(lambda ids: ",".join(ids.head(FEATURED_ITEMS_PER_OFFER))).to_dict()
    )
    overall = item_features.sort_values(["purchases_30d", "views_30d", "item_id"], ascending=[False, False, True])
    return by_category, ",".join(overall["item_id"].head(FEATURED_ITEMS_PER_OFFER))


@dataclass
class NightInputs:
    """What tonight's assignment reads: users, the catalogue, item popularity, features, the policy."""

    users: pd.DataFrame  # user_id, user_key, device, region (by user_id)
    promos: pd.DataFrame
    items: pd.DataFrame  # item popularity as of tonight
    features: pd.DataFrame  # one row per user (left-joined: NaN without features)
    policy_model: object | None  # ml.training.SelectedPolicy, None without a trained model
    live_offers: pd.DataFrame | None = None  # per user with a live offer tonight: user_id, promo_id, live_until


def live_offers(wh: Warehouse, run_date: date) -> pd.DataFrame:
    """The offer each user holds at ``run_date`` 00:00 UTC: their latest offer sent before it, when
    its window is still open (any newer offer replaces a live one; a 'none' control does not), with
    ``remaining_share``, the share of its window still to run, and ``expected_at_send``, the
    incremental margin the platform expected of it when it published it (null for an offer it did
    not send)."""
    assignments = wh.table_exists(wh.default_schema, "promo_assignments")
    expected = "a.expected_incremental_margin" if assignments else "cast(null as double precision)"
    joined = (
        f"left join {wh.default_schema}.promo_assignments a "
        "on a.run_date = o.run_date and a.user_id = o.user_id and a.promo_id = o.promo_id"
        if assignments
        else ""
    )
    live = wh.query_arrow(
        f"""select o.user_id, o.promo_id, o.sent_ts, o.window_end_ts, {expected} as expected_at_send
            from (
                select user_id, promo_id, run_date, sent_ts, window_end_ts,
                       row_number() over (partition by user_id order by sent_ts desc, exposure_id desc) as latest
                from {ANALYTICS_SCHEMA}.fct_promo_outcomes
                where promo_id != ? and sent_ts < ?
            ) o
            {joined}
            where o.latest = 1 and o.window_end_ts > ?
            order by o.user_id""",
        [NONE_ARM, run_date, run_date],
    ).to_pandas()
    sent, end = (pd.to_datetime(live[c], utc=True).dt.tz_localize(None) for c in ("sent_ts", "window_end_ts"))
    window = (end - sent).dt.total_seconds()
    left = (end - pd.Timestamp(run_date)).dt.total_seconds()
    return pd.DataFrame(
        {
            "user_id": live["user_id"],
            "promo_id": live["promo_id"],
            "live_until": end.dt.date,
            "remaining_share": (left / window.where(window > 0)).clip(0.0, 1.0).fillna(1.0),
            "expected_at_send": pd.to_numeric(live["expected_at_send"], errors="coerce"),
        }
    )


def load_night_inputs(settings: Settings, run_date: date, model_version: str | None) -> NightInputs:
    with Warehouse(settings) as wh:
        users = wh.query_arrow(
            f"select user_id, user_key, device, region from {RAW_SCHEMA}.users order by user_id"
        ).to_pandas()
        promos = wh.query_arrow(f"select * from {RAW_SCHEMA}.promotions order by promo_id").to_pandas()
        items = wh.query_arrow(
            f"select i.item_id, i.category, f.views_30d, f.purchases_30d, f.popularity_rank_in_category "
            f"from {RAW_SCHEMA}.item_features f join {RAW_SCHEMA}.items i using (item_id) where f.as_of = ?",
            [run_date],
        ).to_pandas()
        held = live_offers(wh, run_date) if wh.table_exists(ANALYTICS_SCHEMA, "fct_promo_outcomes") else None
    features = feature_store.scoring_features(settings, users["user_id"].tolist(), run_date)
    features = users.merge(features.drop(columns=["event_timestamp"]), on="user_id", how="left", validate="one_to_one")
    features = normalise_window_counts(
        features, pd.Series(pd.Timestamp(run_date), index=features.index), _history_start(settings)
    )
    policy_model = None
    if model_version is not None:
        from ml import training
        from ml.model_store import load_model_version

        with tempfile.TemporaryDirectory(prefix="promoflow-model-") as tmp:
            local = load_model_version(
                settings.model_store_uri, model_version, tmp, endpoint_url=settings.s3_endpoint_url or None
            )
            policy_model = training.load(local)
    return NightInputs(users, promos, items, features, policy_model, held)


def active_arms(promos: pd.DataFrame, arms: list[str], run_date: date) -> np.ndarray:
    """[arms] bool: ``none`` and the promos whose active window holds ``run_date``."""
    rows = promos.set_index("promo_id")
    return np.array(
        [arm == NONE_ARM or (rows.loc[arm, "active_from"] <= run_date <= rows.loc[arm, "active_to"]) for arm in arms]
    )


@dataclass
class NightPlan:
    """Tonight's arm per user after the decision, the holdout and exploration (``plan_night``)."""

    decision: Decision
    chosen: np.ndarray  # [n] arm index recorded for the user
    propensity: np.ndarray  # [n] exact probability of the recorded arm
    is_holdout: np.ndarray  # [n] bool
    is_exploration: np.ndarray  # [n] bool
    expected_cost: np.ndarray  # [n] 0 for none
    expected_margin: np.ndarray  # [n] 0 for none
    exploration_cost_cap: float
    holdout_campaign: str
    exploration_segments: list[dict]  # per segment of the exploration prior (empty without one)
    rested: np.ndarray  # [n] bool: the last offer is at least min_offer_gap_days old (offers allowed)
    min_offer_gap_days: int
    held_offer: np.ndarray  # [n] object: the promo_id of the user's live offer tonight, None without one


def plan_night(
    policy_model,
    features: pd.DataFrame,
    user_ids: np.ndarray,
    arms: list[str],
    active: np.ndarray,
    has_features: np.ndarray,
    *,
    run_date: date,
    budget: float,
    reserve: float,
    holdout_share: float,
    exploration_rate: float,
    rollout_share: float,
    min_offer_gap_days: int = 0,
    held_offer: np.ndarray | None = None,
    held_remaining: np.ndarray | None = None,
    held_expected: np.ndarray | None = None,
    explore_live_offer_holders: bool = True,
) -> NightPlan:
    """The whole decision, a pure function: the policy's arm within ``budget - reserve``
    (:func:`decide`), a salted holdout, exploration inside ``reserve`` with exact propensities.
    A user whose last offer (``days_since_last_exposure``) is under ``min_offer_gap_days`` old
    is eligible for ``none`` only, for the policy and exploration alike; a user's live offer
    (``held_offer``) is never sent to them again, by either, and another offer counts only by what it
    adds beyond the share of that offer's window still to run (``held_remaining``, [n] in [0, 1];
    None: the whole window), valued at least at what the platform expected of it when it sent it
    (``held_expected``, [n]; 0 for offers it did not send) (:func:`ml.candidates.decide_and_estimate`);
    without ``explore_live_offer_holders`` (training drops the exposures sent under a live offer,
    so an explorer's row there would never be learnt from) nobody holding one explores.
    The night's expected cost never exceeds ``budget``."""
    from ml import allocation

    user_ids = np.asarray(user_ids)
    campaign = f"holdout-{run_date:%Y-%m}"  # stable per user within a calendar month
    is_holdout = allocation.holdout_mask(user_ids, holdout_share, campaign)
    features = features.fillna({"top_category": "unknown"})
    rested = rested_users(features, min_offer_gap_days)
    held_offer = (
        np.full(len(user_ids), None, dtype=object) if held_offer is None else np.asarray(held_offer, dtype=object)
    )
    remaining = np.ones(len(user_ids)) if held_remaining is None else np.asarray(held_remaining, dtype=np.float64)
    remaining = np.clip(np.nan_to_num(remaining, nan=1.0), 0.0, 1.0)
    live = (held_offer[:, None] == np.asarray(arms, dtype=object)[None, :]) * remaining[:, None]
    decision = decide(
        policy_model,
        features,
        user_ids,
        arms,
        active,
        has_features,
        rested=rested,
        held=live,
        held_expected=held_expected,
        budget=budget - reserve,
        rollout_share=rollout_share,
        salt=run_date.isoformat(),
    )
    none_index = arms.index(NONE_ARM)
    # Exploration needs a cost estimate: without a model every offer's cost is unknown (inf),
    # so only 'none' is within any cap.
    exploration_cost = decision.cost.copy() if policy_model is not None else np.full(decision.cost.shape, np.inf)
    exploration_cost[:, none_index] = 0.0
    prior = getattr(policy_model, "exploration", None)  # absent: plain epsilon-greedy
    segments = prior.segment(features) if prior is not None else None
    exploration = allocation.explore(
        decision.arm,
        is_holdout,
        decision.eligible,
        exploration_cost,
        none_index,
        user_ids=user_ids,
        rate=exploration_rate,
        reserve_budget=reserve,
        holdout_share=holdout_share,
        salt=f"explore-{run_date.isoformat()}",
        policy_probabilities=decision.probabilities,
        segments=segments,
        segment_mean=None if prior is None else prior.mean,
        segment_se=None if prior is None else prior.se,
        explorable=None if explore_live_offer_holders else pd.isna(held_offer),
    )
    chosen = exploration.recorded_arm
    rows = np.arange(len(user_ids))
    is_offer = chosen != none_index
    expected_cost = np.where(is_offer, decision.cost[rows, chosen], 0.0)
    estimate = decision.estimate
    if decision.status == "none" and prior is not None:
        # no candidate published: an explorer's offer is worth what its segment's held-out value says
        estimate = prior.mean[segments]
    expected_margin = np.where(is_offer, estimate[rows, chosen], 0.0)
    if float(expected_cost.sum()) > budget + 1e-9:  # unreachable by construction (ml.allocation.explore)
        raise RuntimeError(f"assignments cost {expected_cost.sum():.2f} over the budget {budget}; report this as a bug")
    return NightPlan(
        decision=decision,
        chosen=chosen,
        propensity=exploration.propensity,
        is_holdout=is_holdout,
        is_exploration=exploration.is_exploration & ~is_holdout,
        expected_cost=expected_cost,
        expected_margin=expected_margin,
        exploration_cost_cap=float(exploration.cost_cap),
        holdout_campaign=campaign,
        exploration_segments=_exploration_segments(prior, segments, exploration, is_holdout, chosen, none_index),
        rested=rested,
        min_offer_gap_days=min_offer_gap_days,
        held_offer=held_offer,
    )


def trained_without_live_offer_rows(policy_model) -> bool:
    """Whether the stored policy's training dropped the exposures sent under a live offer
    (``training_frame``; versions stored before this was recorded: False)."""
    metrics = getattr(policy_model, "selection_metrics", None) or {}
    return bool(metrics.get("dropped_rows_sent_under_live_offer", False))


def _live_offer_column(inputs: NightInputs, column: str) -> pd.Series:
    """``inputs.live_offers[column]`` by ``inputs.users`` (NaN for users without a live offer)."""
    if inputs.live_offers is None or inputs.live_offers.empty:
        return pd.Series(np.nan, index=inputs.users["user_id"], dtype=object)
    return inputs.live_offers.set_index("user_id")[column].reindex(inputs.users["user_id"])


def held_remaining(inputs: NightInputs) -> np.ndarray:
    """[n] float, by ``inputs.users``: the share of each user's live offer's window still to run, 0 without one."""
    return pd.to_numeric(_live_offer_column(inputs, "remaining_share")).fillna(0.0).to_numpy(dtype=np.float64)


def held_expected(inputs: NightInputs) -> np.ndarray:
    """[n] float, by ``inputs.users``: what the platform expected of each user's live offer when it
    sent it, 0 without one or for an offer it did not send."""
    return pd.to_numeric(_live_offer_column(inputs, "expected_at_send")).fillna(0.0).to_numpy(dtype=np.float64)


def held_offers(inputs: NightInputs) -> np.ndarray:
    """[n] object, by ``inputs.users``: the promo_id of each user's live offer tonight, None without one."""
    held = _live_offer_column(inputs, "promo_id")
    return held.astype(object).where(held.notna(), None).to_numpy(dtype=object)


def _exploration_segments(prior, segments, exploration, is_holdout, chosen, none_index) -> list[dict]:
    """Per segment of the exploration prior: its rule, users, explorers and the offers they got."""
    if prior is None:
        return []
    explored = exploration.is_exploration & ~is_holdout
    return [
        {
            "segment": rule or "everyone",
            "users": int((segments == s).sum()),
            "explorers": int((explored & (segments == s)).sum()),
            "explorer_offers": int((explored & (segments == s) & (chosen != none_index)).sum()),
        }
        for s, rule in enumerate(prior.rules)
    ]


def _delivered(
    settings: Settings,
    run_date: date,
    inputs: NightInputs,
    plan: NightPlan,
    arms: list[str],
    has_features: np.ndarray,
    recommender: dict | None,
) -> tuple[dict, np.ndarray | None]:
    """Channel, send hour, message, featured items and reasons of every row."""
    from ml import delivery
    from promoflow.recommend import featured_for_offers

    users, promos, decision = inputs.users, inputs.promos, plan.decision
    rows = np.arange(len(users))
    chosen_ids = np.array(arms, dtype=object)[plan.chosen]
    is_offer = plan.chosen != arms.index(NONE_ARM)
    top_by_category, top_overall = _top_items(inputs.items)
    offer_categories = promos.set_index("promo_id")["category"].reindex(chosen_ids).to_numpy(dtype=object)
    recommended = featured_for_offers(
        settings,
        run_date,
        recommender,
        users["user_id"].to_numpy(),
        is_offer,
        offer_categories,
        FEATURED_ITEMS_PER_OFFER,
    )
    drivers = np.full(len(users), "", dtype=object)  # reasons name them for offers only
    policy_model = inputs.policy_model
    if policy_model is not None and is_offer.any():
        if policy_model.uplift is not None:
            drivers[is_offer] = policy_model.uplift.top_drivers(inputs.features.loc[is_offer], plan.chosen[is_offer])
        else:
            drivers[is_offer] = f"{policy_model.production}: {decision.description}"
    language = np.where(users["region"].fillna("").str.upper().str.startswith("CN"), "zh", settings.message_language)
    delivered = delivery.delivery_columns(
        chosen_ids,
        is_offer=is_offer,
        is_holdout=plan.is_holdout,
        is_exploration=plan.is_exploration,
        has_features=has_features,
        chosen_estimate=decision.estimate[rows, plan.chosen],
        chosen_cost=decision.cost[rows, plan.chosen],
        drivers=drivers,
        language=language,
        device=users["device"],
        features=inputs.features,
        promos=promos,
        top_by_category=top_by_category,
        top_overall=top_overall,
        run_date=run_date,
        gate_passed=decision.status != "none",
        gate_message=decision.message,
        holdout_share=settings.holdout_share,
        holdout_campaign=plan.holdout_campaign,
        featured_item_ids=recommended,
    )
    too_soon = np.flatnonzero(~plan.rested & ~is_offer & ~plan.is_holdout & has_features)
    if too_soon.size:
        days = inputs.features["days_since_last_exposure"].to_numpy(dtype=float)[too_soon]
        reason = np.asarray(delivered["reason"], dtype=object).copy()
        reason[too_soon] = [f"last offer {d:.0f} days ago: minimum gap {plan.min_offer_gap_days} days" for d in days]
        delivered["reason"] = reason
    holds = pd.notna(plan.held_offer)
    if holds.any():
        until = _live_offer_column(inputs, "live_until").to_numpy(dtype=object)
        reason = np.asarray(delivered["reason"], dtype=object).copy()

        def add(rows: np.ndarray, text: str) -> None:
            reason[rows] = [
                f"{r}; " + text.format(promo=promo, until=d)
                for r, promo, d in zip(reason[rows], plan.held_offer[rows], until[rows])
            ]

        if decision.status != "none":
            add(
                np.flatnonzero(holds & ~is_offer & ~plan.is_holdout & ~plan.is_exploration & has_features),
                "holds {promo} until {until} (a live offer is not sent again)",
            )
        add(
            np.flatnonzero(holds & is_offer & ~plan.is_exploration),
            "replaces {promo}, live until {until} (valued by what it adds beyond the rest of that offer)",
        )
        delivered["reason"] = reason
    if decision.status == "rollout":  # the rollout's fallback group says so
        control = ~decision.in_rollout & ~is_offer & ~plan.is_holdout & ~plan.is_exploration & has_features
        delivered["reason"] = np.where(
            control,
            f"staged rollout of {decision.policy}: this user is in the fallback ('none') group",
            np.asarray(delivered["reason"], dtype=object),
        )
    return delivered, recommended


def assign(settings: Settings, run_date: date, model_version: str | None, recommender: dict | None = None) -> dict:
    """Load tonight's inputs, plan the night (:func:`plan_night`), render delivery, stage the rows.

    ``recommender``: what ``train_recommender`` returned tonight (its version and the featured
    items' source); None or source ``category_rule``: featured items from ``_top_items``."""
    inputs = load_night_inputs(settings, run_date, model_version)
    users, policy_model = inputs.users, inputs.policy_model
    arms = policy_model.arms if policy_model is not None else [*inputs.promos["promo_id"], NONE_ARM]
    has_features = inputs.features["tenure_days"].notna().to_numpy()
    plan = plan_night(
        policy_model,
        inputs.features,
        users["user_id"].to_numpy(),
        arms,
        active_arms(inputs.promos, arms, run_date),
        has_features,
        run_date=run_date,
        budget=settings.budget,
        reserve=exploration_reserve(settings),
        holdout_share=settings.holdout_share,
        exploration_rate=settings.exploration_rate,
        rollout_share=settings.rollout_share,
        min_offer_gap_days=settings.min_offer_gap_days,
        held_offer=held_offers(inputs),
        held_remaining=held_remaining(inputs),
        held_expected=held_expected(inputs),
        explore_live_offer_holders=not trained_without_live_offer_rows(policy_model),
    )
    delivered, recommended = _delivered(settings, run_date, inputs, plan, arms, has_features, recommender)
    chosen_ids = np.array(arms, dtype=object)[plan.chosen]
    table = pa.Table.from_pydict(
        {
            "run_date": [run_date] * len(users),
            "user_key": users["user_key"],
            "user_id": users["user_id"],
            "promo_id": chosen_ids.tolist(),
            "channel": delivered["channel"],
            "send_hour": delivered["send_hour"],
            "message": delivered["message"],
            "featured_item_ids": delivered["featured_item_ids"],
            "expected_incremental_margin": plan.expected_margin,
            "expected_cost": plan.expected_cost,
            "propensity": plan.propensity,
            "is_holdout": plan.is_holdout,
            "is_exploration": plan.is_exploration,
            "reason": delivered["reason"],
            "policy_version": [settings.policy_version] * len(users),
            "model_version": [model_version or "none"] * len(users),
        },
        schema=PROMO_ASSIGNMENTS,
    )
    path = staged_assignments_path(settings, run_date)
    atomic.write_with(path, lambda tmp: pq.write_table(table, tmp))
    return _summary(plan, chosen_ids, arms, recommended, recommender)


def _summary(plan: NightPlan, chosen_ids: np.ndarray, arms: list[str], recommended, recommender) -> dict:
    decision = plan.decision
    is_offer = plan.chosen != arms.index(NONE_ARM)
    explored = plan.is_exploration
    return json_safe(
        {
            "users": len(chosen_ids),
            "offers": int(is_offer.sum()),
            "holdout": int(plan.is_holdout.sum()),
            "expected_cost": float(plan.expected_cost.sum()),
            "expected_incremental_margin": float(plan.expected_margin.sum()),
            "exploration": int(explored.sum()),
            "exploration_cost": float(plan.expected_cost[explored].sum()),
            "exploration_expected_margin": float(plan.expected_margin[explored].sum()),
            "exploration_cost_cap": plan.exploration_cost_cap,
            "exploration_segments": plan.exploration_segments,
            "live_offer_holders": int(pd.notna(plan.held_offer).sum()),
            "offers_replacing_a_live_offer": int((is_offer & pd.notna(plan.held_offer)).sum()),
            "policy": decision.policy,
            "status": decision.status,
            "policy_description": decision.description,
            "rollout_share": decision.rollout_share,
            "rollout_users": int(decision.in_rollout.sum()),
            "offers_by_promo": pd.Series(chosen_ids[is_offer]).value_counts().sort_index().to_dict(),
            "expected_cost_by_promo": pd.Series(plan.expected_cost[is_offer])
            .groupby(chosen_ids[is_offer])
            .sum()
            .to_dict()
            if is_offer.any()
            else {},
            "gate_passed": decision.status != "none",
            "gate": decision.message,
            "featured_items": {
                "source": "recommender" if recommended is not None else "category_rule",
                "recommender_version": (recommender or {}).get("recommender_version"),
                "offers_with_recommended_items": 0
                if recommended is None
                else int(pd.notna(recommended[is_offer]).sum()),
            },
        }
    )


@dataclass
class Decision:
    """Tonight's policy choice per user, before holdout and exploration (``decide``)."""

    arm: np.ndarray  # [n] the policy's arm (candidate or fallback)
    probabilities: np.ndarray  # [n, arms] the policy's probability of each arm (rollout: a mix)
    estimate: np.ndarray  # [n, arms] expected incremental margin
    cost: np.ndarray  # [n, arms] expected discount cost
    eligible: np.ndarray  # [n, arms]
    in_rollout: np.ndarray  # [n] bool: in the rollout group (status "rollout")
    status: str  # "published", "rollout" or "none"
    policy: str
    description: str
    message: str
    rollout_share: float


def rested_users(features: pd.DataFrame, min_offer_gap_days: int) -> np.ndarray:
    """Users who may get an offer tonight: their last offer is at least ``min_offer_gap_days`` old
    (``days_since_last_exposure`` counts offers only, not 'none' controls; never sent: rested)."""
    if min_offer_gap_days <= 0 or "days_since_last_exposure" not in features:
        return np.ones(len(features), dtype=bool)
    days = pd.to_numeric(features["days_since_last_exposure"], errors="coerce").to_numpy(dtype=float)
    return ~(days < min_offer_gap_days)  # NaN (never sent) compares False: rested


def decide(
    policy_model,
    features: pd.DataFrame,
    user_ids: np.ndarray,
    arms: list[str],
    active: np.ndarray,
    has_features: np.ndarray,
    *,
    rested: np.ndarray | None = None,
    held: np.ndarray | None = None,
    held_expected: np.ndarray | None = None,
    budget: float,
    rollout_share: float,
    salt: str,
) -> Decision:
    """The decision itself, a pure function of the stored policy and tonight's users: the published
    candidate's arm per user within ``budget``; under a staged rollout the candidate for a random
    ``rollout_share`` of users (a salted hash) and ``none`` for the rest; nothing without a model or
    when the gate fell back. Probabilities are exact, for exploration's propensities. ``held``
    [n, arms]: each user's live offer, as the share of its window still to run (a bool array: the
    whole window), eligible for nobody's sends tonight; a policy that values it counts any other
    offer only by what it adds beyond it, and beyond ``held_expected`` [n], what the platform expected
    of it when it sent it (:func:`ml.candidates.decide_and_estimate`)."""
    from ml.candidates import decide_and_estimate
    from ml.selection import stable_uniform

    n, none = len(user_ids), arms.index(NONE_ARM)
    eligible = np.broadcast_to(active, (n, len(arms))) & np.asarray(has_features, dtype=bool)[:, None]
    if rested is not None:  # too soon after the last offer: 'none' only
        eligible = eligible & (np.asarray(rested, dtype=bool)[:, None] | (np.arange(len(arms)) == none)[None, :])
    held = np.zeros((n, len(arms))) if held is None else np.asarray(held, dtype=np.float64)
    held = np.where((np.arange(len(arms)) != none)[None, :], held, 0.0)
    offerable = eligible & ~(held > 0)  # what exploration may send (Decision.eligible)
    nothing = np.full(n, none, dtype=np.int64)
    if policy_model is None:
        zeros = np.zeros((n, len(arms)))
        return Decision(
            nothing,
            np.eye(len(arms))[nothing],
            zeros,
            zeros,
            offerable,
            np.zeros(n, dtype=bool),
            "none",
            "none",
            "send nothing",
            "no model: no matured randomised exposures to learn from",
            0.0,
        )
    cost = policy_model.cost(features, np.asarray(policy_model.window_days))
    status = policy_model.status
    fitted = policy_model.fitted
    if status == "none" or fitted is None:
        estimate = np.zeros((n, len(arms)))
        return Decision(
            nothing,
            np.eye(len(arms))[nothing],
            estimate,
            cost,
            offerable,
            np.zeros(n, dtype=bool),
            "none",
            policy_model.production,
            "send nothing",
            policy_model.gate.get("message", ""),
            0.0,
        )
    tiebreak = stable_uniform(list(pd.Series(user_ids).astype(str)), f"tie-{salt}")
    arm, estimate = decide_and_estimate(fitted, features, cost, budget, eligible, tiebreak, held, held_expected)
    in_rollout = np.ones(n, dtype=bool)
    share = 1.0
    if status == "rollout":
        share = float(policy_model.rollout_share or rollout_share)
        in_rollout = stable_uniform(list(pd.Series(user_ids).astype(str)), f"rollout-{salt}") < share
    probabilities = share * np.eye(len(arms))[arm] + (1.0 - share) * np.eye(len(arms))[nothing]
    arm = np.where(in_rollout, arm, none)
    return Decision(
        arm,
        probabilities,
        estimate,
        cost,
        offerable,
        in_rollout if status == "rollout" else np.zeros(n, dtype=bool),
        status,
        policy_model.production,
        fitted.describe(),
        policy_model.gate.get("message", ""),
        share if status == "rollout" else 0.0,
    )
