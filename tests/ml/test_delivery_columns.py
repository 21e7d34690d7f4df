"""ml.delivery.delivery_columns gives, row for row, what assign's former per-user loop gave.

``reference_delivery_columns`` is that loop (promoflow.decisions.assign up to the commit that
replaced it), copied with its inputs passed in; benchmarks/bench_assign.py times both on
``synthetic_night``.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from ml import delivery
from ml.delivery import choose_channel, choose_channels, delivery_columns, reason_codes
from promoflow.contract import NONE_ARM

RUN_DATE = dt.date(2026, 10, 31)

TOP_BY_CATEGORY = {"beauty": "b01,b02,b03", "electronics": "e01,e02,e03", "books": "k01,k02", "garden": "g01"}
TOP_OVERALL = "b01,e01,k01"
CATEGORIES = ["beauty", "electronics", "books", "garden", "unknown", "shoes"]
DEVICES = ["ios", "Android", "web", " IOS ", "tablet", None, np.nan]
DRIVERS = ["", "orders_30d+, tenure_days-", "discount_order_share_90d+, spend_30d-", "redemption_rate_90d-, views_30d+"]
SHARES = [0.0, 0.1, 0.2, 0.4, np.nan]
# estimates on a half cent (rounded half to even by Python), tiny negatives ("-0.00"), large ones
AWKWARD = [0.125, 0.375, -0.125, 0.005, 1.005, 2.675, -0.005, -0.001, -0.0, 0.0, 1e9 + 0.005, 123456.785, 1e15, 3.0]


def catalogue() -> pd.DataFrame:
    """Every promo type; fixed channels (odd case and blanks too), category promos, a NaN category."""
    rows = [
        ("p_amt5", "amount_off", 5.0, 25.0, None, None, None, 7),
        ("p_beauty15", "percent_off", 15.0, 0.0, 20.0, "beauty", None, 7),
        ("p_elec_amt20", "amount_off", 20.0, 100.0, None, "electronics", " Email ", 14),
        ("p_freeship", "free_shipping", 4.99, 0.0, 4.99, None, "push", 3),
        ("p_gift_tote", "gift", 6.0, 40.0, None, None, None, 14),
        ("p_nan_cat", "spend_threshold", 12.0, 60.0, None, np.nan, "", 10),
        ("p_pct10", "percent_off", 10.0, 0.0, 15.0, None, "SMS", 7),
        ("p_pct20", "percent_off", 20.0, 30.0, 30.0, None, np.nan, 5),
        ("p_toys_gift", "gift", 8.0, 0.0, None, "toys", "in_app", 1),
    ]
    frame = pd.DataFrame(
        rows,
        columns=["promo_id", "promo_type", "value", "min_spend", "max_discount", "category", "channel", "valid_days"],
    )
    frame["active_from"] = dt.date(2026, 9, 1)
    frame["active_to"] = dt.date(2026, 12, 31)
    return frame


def synthetic_night(n_users: int, seed: int = 0, *, offer_share: float = 0.5) -> dict:
    """Keyword arguments of delivery_columns for ``n_users`` mixed users (vectorised, 1M in seconds)."""
    rng = np.random.default_rng(seed)
    promos = catalogue()
    arms = [*promos["promo_id"], NONE_ARM]
    none_index = arms.index(NONE_ARM)
    has_features = rng.random(n_users) < 0.9
    chosen = np.where(rng.random(n_users) < offer_share, rng.integers(0, none_index, n_users), none_index)
    is_holdout = rng.random(n_users) < 0.05
    chosen[is_holdout] = none_index
    is_exploration = (rng.random(n_users) < 0.08) & ~is_holdout
    is_offer = chosen != none_index

    estimate = np.round(rng.normal(0.8, 2.0, n_users), int(rng.integers(2, 6)))
    cost = np.where(rng.random(n_users) < 0.15, 0.0, np.round(rng.exponential(1.5, n_users), 3))
    awkward = rng.random(n_users) < 0.1
    estimate[awkward] = rng.choice(AWKWARD, int(awkward.sum()))
    cost[awkward[::-1]] = rng.choice(AWKWARD[:10] + [np.inf], int(awkward.sum()))
    cost = np.abs(cost)

    def pick(values, missing):
        picked = np.array(values, dtype=object)[rng.integers(0, len(values), n_users)]
        picked[missing] = np.nan
        return picked

    features = pd.DataFrame(
        {
            "preferred_hour": np.where(
                has_features & (rng.random(n_users) < 0.95), rng.integers(0, 24, n_users), np.nan
            ),
            "top_category": pick(CATEGORIES, ~has_features),
            **{f"channel_engagement_{c}_90d": pick(SHARES, ~has_features).astype(float) for c in delivery.CHANNELS},
        }
    )
    return dict(
        chosen_ids=np.array(arms, dtype=object)[chosen],
        is_offer=is_offer,
        is_holdout=is_holdout,
        is_exploration=is_exploration,
        has_features=has_features,
        chosen_estimate=np.where(is_offer, estimate, 0.0),
        chosen_cost=np.where(is_offer, cost, 0.0),
        drivers=np.array(DRIVERS, dtype=object)[rng.integers(0, len(DRIVERS), n_users)],
        language=np.where(rng.random(n_users) < 0.3, "zh", "en"),
        device=pd.Series(np.array(DEVICES, dtype=object)[rng.integers(0, len(DEVICES), n_users)]),
        features=features,
        promos=promos,
        top_by_category=TOP_BY_CATEGORY,
        top_overall=TOP_OVERALL,
        run_date=RUN_DATE,
        gate_passed=True,
        gate_message="policy beats sending nothing (DR and IPS)",
        holdout_share=0.05,
        holdout_campaign=f"holdout-{RUN_DATE:%Y-%m}",
    )


def reference_delivery_columns(
    chosen_ids,
    *,
    is_offer,
    is_holdout,
    is_exploration,
    has_features,
    chosen_estimate,
    chosen_cost,
    drivers,
    language,
    device,
    features,
    promos,
    top_by_category,
    top_overall,
    run_date,
    gate_passed,
    gate_message,
    holdout_share,
    holdout_campaign,
) -> dict[str, list]:
    """The former per-user loop of promoflow.decisions.assign (``model_version is None`` implied
    ``not gate_passed`` there; ``estimate[i, chosen[i]]`` is ``chosen_estimate[i]``)."""
    promo_rows = promos.set_index("promo_id")
    featured = features["top_category"].map(top_by_category).fillna(top_overall)
    device = pd.Series(device).reset_index(drop=True)
    campaign = holdout_campaign
    channels, messages, featured_ids, reasons, send_hours = [], [], [], [], []
    for i in range(len(chosen_ids)):
        preferred_hour = features.at[i, "preferred_hour"]
        send_hours.append(int(preferred_hour) if pd.notna(preferred_hour) else 10)
        if not is_offer[i]:
            channels.append(None)
            messages.append(None)
            featured_ids.append(None)
            if is_holdout[i]:
                reasons.append(f"holdout ({holdout_share:.0%} measurement group, {campaign})")
            elif is_exploration[i]:
                reasons.append("exploration: 'none' drawn at random")
            elif not gate_passed:
                reasons.append(f"fallback: {gate_message}")
            elif not has_features[i]:
                reasons.append("no features within TTL")
            else:
                reasons.append("no arm with positive expected incremental margin within budget")
            continue
        promo = promo_rows.loc[chosen_ids[i]].to_dict() | {"promo_id": chosen_ids[i]}
        category = promo.get("category")
        item_ids = top_by_category.get(category, top_overall) if category else featured.iloc[i]
        engagement = {
            c: features.at[i, f"channel_engagement_{c}_90d"]
            for c in delivery.CHANNELS
            if f"channel_engagement_{c}_90d" in features
        }
        channels.append(delivery.choose_channel(promo.get("channel"), device.at[i], engagement))
        messages.append(
            delivery.render_message(
                promo,
                delivery.expiry_date(run_date, int(promo["valid_days"])),
                item_ids.split(",") if item_ids else None,
                language=str(language[i]),
            )
        )
        featured_ids.append(item_ids or None)
        reasons.append(
            delivery.reason_codes(
                float(chosen_estimate[i]), float(chosen_cost[i]), drivers[i], is_exploration=bool(is_exploration[i])
            )
        )
    return {
        "channel": channels,
        "message": messages,
        "featured_item_ids": featured_ids,
        "reason": reasons,
        "send_hour": send_hours,
    }


def assert_same_columns(night: dict) -> pd.DataFrame:
    expected = reference_delivery_columns(**night)
    got = delivery_columns(**night)
    assert list(got.columns) == list(expected)
    for column, values in expected.items():
        mismatched = [
            (i, values[i], got[column].iloc[i]) for i in range(len(values)) if got[column].iloc[i] != values[i]
        ]
        assert not mismatched, f"{column}: {len(mismatched)} rows differ, first {mismatched[:3]}"
        assert all(type(a) is type(b) for a, b in zip(values, got[column].tolist())), column
    return got


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_delivery_columns_equal_the_per_user_loop(seed):
    night = synthetic_night(600, seed)
    got = assert_same_columns(night)
    # the synthetic night covers what the loop distinguishes
    assert got["channel"].nunique() == 4 and got["message"].str.contains("有效期至").any()
    assert got["reason"].str.startswith("exploration; ").any() and got["reason"].str.contains("drivers: ").any()
    assert got["reason"].str.startswith("holdout (5% measurement group").any()
    assert got["reason"].str.contains("-0.00 vs none").any() and got["reason"].str.contains("cost inf").any()
    assert (got["featured_item_ids"] == TOP_OVERALL).any() and got["send_hour"].eq(10).any()


def test_fallback_no_features_and_a_night_without_offers():
    night = synthetic_night(300, 3) | {
        "gate_passed": False,
        "gate_message": "no model: no matured randomised exposures to learn from",
    }
    got = assert_same_columns(night)
    assert got["reason"].str.startswith("fallback: no model").any()
    none_only = synthetic_night(200, 4, offer_share=0.0)
    got = assert_same_columns(none_only)
    assert got["channel"].isna().all() and got["reason"].eq("no features within TTL").any()
    assert_same_columns(synthetic_night(200, 5) | {"gate_message": None, "gate_passed": False})


def test_no_items_no_engagement_columns_and_integer_hours():
    night = synthetic_night(300, 6)
    features = night["features"].drop(columns=[f"channel_engagement_{c}_90d" for c in ("sms", "in_app")])
    features["preferred_hour"] = features["preferred_hour"].fillna(7).astype(np.int64)
    assert_same_columns(night | {"features": features})
    fractional = night["features"].assign(preferred_hour=night["features"]["preferred_hour"] + 0.75)  # int() truncates
    assert_same_columns(night | {"features": fractional})
    got = assert_same_columns(night | {"top_by_category": {}, "top_overall": ""})
    assert got["featured_item_ids"].isna().all() and not got["message"].str.contains("Picked", na=False).any()
    no_engagement = night["features"][["preferred_hour", "top_category"]]
    assert_same_columns(night | {"features": no_engagement})


def test_an_unknown_fixed_channel_is_still_named():
    night = synthetic_night(100, 7)
    promos = night["promos"].copy()
    promos.loc[promos["promo_id"] == "p_pct10", "channel"] = "fax"
    night = night | {"promos": promos, "chosen_ids": np.where(night["is_offer"], "p_pct10", NONE_ARM).astype(object)}
    with pytest.raises(ValueError, match="fax"):
        delivery_columns(**night)


def test_channels_follow_choose_channel_ties_included():
    rng = np.random.default_rng(11)
    n = 3000
    fixed = np.array([None, np.nan, "", "  ", "sms", "In_App", "EMAIL"], dtype=object)[rng.integers(0, 7, n)]
    devices = np.array(DEVICES, dtype=object)[rng.integers(0, len(DEVICES), n)]
    shares = {
        c: np.array([0.0, 0.3, 0.3, np.nan, np.inf, -1.0])[rng.integers(0, 6, n)] for c in ("push", "email", "sms")
    }
    got = choose_channels(fixed, devices, shares)
    expected = [choose_channel(fixed[i], devices[i], {c: v[i] for c, v in shares.items()}) for i in range(n)]
    assert got.tolist() == expected


def test_a_tiny_negative_uplift_reads_minus_zero():
    assert reason_codes(-0.001, 0.0) == "uplift -0.00 vs none; cost 0.00"


def test_recommended_items_replace_the_rule_for_offers_only_and_fall_back_when_missing():
    night = synthetic_night(400, seed=5)
    rule = delivery_columns(**night)
    offers = np.flatnonzero(np.asarray(night["is_offer"]))
    recommended = np.full(400, None, dtype=object)
    recommended[offers[::2]] = [f"r{i},r{i + 1},r{i + 2}" for i in range(len(offers[::2]))]
    recommended[~np.asarray(night["is_offer"])] = "x1,x2,x3"  # ignored: no offer, no items
    got = delivery_columns(**night, featured_item_ids=recommended)
    assert got["featured_item_ids"].iloc[offers[::2]].tolist() == recommended[offers[::2]].tolist()
    assert got["featured_item_ids"].iloc[offers[1::2]].tolist() == rule["featured_item_ids"].iloc[offers[1::2]].tolist()
    assert got["featured_item_ids"][~np.asarray(night["is_offer"])].isna().all()
    # the message names the featured items it was rendered with
    first = offers[0]
    assert "r0" in got["message"].iloc[first] and got["message"].iloc[first] != rule["message"].iloc[first]
