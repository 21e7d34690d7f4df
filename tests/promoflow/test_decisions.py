"""The night's decision as a pure function: ``plan_night`` without a warehouse, Feast or a model store."""

from __future__ import annotations

from datetime import date
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from ml import candidates as cand
from promoflow import decisions
from promoflow.decisions import active_arms, plan_night

ARMS = ["promo_a", "promo_b", "none"]
RUN_DATE = date(2026, 10, 31)


def _plan(policy, n=4000, budget=300.0, reserve=30.0, has_features=None, features=None, **overrides):
    users = np.array([f"u{i}" for i in range(n)])
    kwargs = (
        dict(
            run_date=RUN_DATE,
            budget=budget,
            reserve=reserve,
            holdout_share=0.05,
            exploration_rate=0.02,
            rollout_share=0.25,
        )
        | overrides
    )
    return plan_night(
        policy,
        pd.DataFrame({"tenure_days": np.ones(n)}) if features is None else features,
        users,
        ARMS,
        np.ones(3, bool),
        np.ones(n, bool) if has_features is None else has_features,
        **kwargs,
    )


def _published(status="published"):
    return SimpleNamespace(
        arms=ARMS,
        window_days=[7.0, 7.0, 0.0],
        status=status,
        production="blanket:promo_a",
        rollout_share=0.25 if status == "rollout" else 0.0,
        fitted=cand.FittedBlanket(ARMS, 0, 1.5),
        gate={"message": status},
        cost=lambda f, w: np.ones((len(f), 3)) * [2.0, 1.0, 0.0],
    )


def test_without_a_model_only_none_goes_out_and_exploration_cannot_spend():
    plan = _plan(None)
    assert plan.decision.status == "none" and plan.decision.message.startswith("no model")
    assert (plan.chosen == ARMS.index("none")).all()
    assert plan.expected_cost.sum() == 0.0 and plan.expected_margin.sum() == 0.0
    assert abs(plan.is_holdout.mean() - 0.05) < 0.02
    assert ((plan.propensity > 0) & (plan.propensity <= 1)).all()


def test_a_fallen_back_gate_sends_nothing_but_exploration_within_its_reserve():
    fallback = _published(status="none")
    fallback.fitted = None
    plan = _plan(fallback)
    greedy = ~plan.is_exploration
    assert (plan.chosen[greedy] == ARMS.index("none")).all()
    assert plan.expected_cost.sum() <= 30.0 + 1e-9  # only exploration spends, inside the reserve
    assert plan.is_exploration.any() and not (plan.is_exploration & plan.is_holdout).any()


@pytest.mark.parametrize("status", ["published", "rollout"])
def test_the_night_never_spends_over_its_budget_and_the_policy_keeps_out_of_the_reserve(status):
    plan = _plan(_published(status))
    greedy = ~plan.is_exploration
    assert plan.expected_cost.sum() <= 300.0 + 1e-9
    assert plan.expected_cost[greedy].sum() <= 300.0 - 30.0 + 1e-9
    assert plan.expected_cost[plan.is_exploration].sum() <= 30.0 + 1e-9
    assert not plan.is_holdout[plan.chosen != ARMS.index("none")].any()
    if status == "published":
        picked = plan.decision.arm == 0
        assert picked.sum() == 135  # (300 - 30) / cost 2
        # the holdout and the explorers among them get something else; everyone else keeps the offer
        kept = picked & ~plan.is_holdout & ~plan.is_exploration
        assert (plan.chosen[kept] == 0).all() and kept.sum() >= 135 - 0.15 * 135
    else:
        assert 0 < (plan.chosen[greedy] == 0).sum() < 135 and plan.decision.in_rollout.any()


def test_users_without_features_get_nothing():
    has_features = np.arange(4000) % 2 == 0
    plan = _plan(_published(), has_features=has_features)
    assert (plan.chosen[~has_features] == ARMS.index("none")).all()


def test_no_offer_within_the_minimum_gap_from_the_policy_or_exploration():
    n = 4000
    last = np.where(np.arange(n) % 4 == 0, 2.0, np.where(np.arange(n) % 4 == 1, 7.0, np.nan))
    features = pd.DataFrame({"tenure_days": np.ones(n), "days_since_last_exposure": last})
    plan = _plan(_published(), budget=1e6, reserve=1e5, features=features, exploration_rate=0.5, min_offer_gap_days=7)
    offered = plan.chosen != ARMS.index("none")
    assert not offered[last < 7].any()  # sent 2 days ago: nothing, not even an exploration draw
    assert offered[last == 7].mean() > 0.4 and offered[np.isnan(last)].mean() > 0.4
    assert plan.is_exploration[last < 7].any()  # explorers there could only draw 'none'
    assert (plan.propensity > 0).all() and (plan.propensity <= 1).all()
    no_gap = _plan(_published(), budget=1e6, reserve=1e5, features=features, exploration_rate=0.5)
    assert (no_gap.chosen != ARMS.index("none"))[last < 7].mean() > 0.4


def test_a_live_offer_is_never_sent_again_by_the_policy_or_exploration():
    n = 4000
    held = np.where(np.arange(n) % 2 == 0, "promo_a", None).astype(object)
    plan = _plan(_published(), budget=1e6, reserve=1e5, exploration_rate=0.5, held_offer=held)
    holders = pd.notna(held)
    assert not (plan.chosen[holders] == 0).any()  # promo_a to nobody who holds it, explorer or not
    assert (plan.decision.arm[holders] == ARMS.index("none")).all()  # a blanket's other arm is not its own
    assert (plan.chosen[~holders & ~plan.is_exploration & ~plan.is_holdout] == 0).all()
    assert (plan.chosen[holders & plan.is_exploration] == 1).any()  # promo_b is still theirs to explore
    assert (plan.propensity > 0).all() and (plan.propensity <= 1).all()
    assert (plan.held_offer == held).all()
    # training drops rows sent under a live offer: an explorer there would teach it nothing
    quiet = _plan(
        _published(), budget=1e6, reserve=1e5, exploration_rate=0.5, held_offer=held, explore_live_offer_holders=False
    )
    assert not quiet.is_exploration[holders].any() and quiet.is_exploration[~holders].any()
    assert (quiet.chosen[holders & ~quiet.is_holdout] == ARMS.index("none")).all()
    assert decisions.trained_without_live_offer_rows(
        SimpleNamespace(selection_metrics={"dropped_rows_sent_under_live_offer": True})
    )
    assert not decisions.trained_without_live_offer_rows(SimpleNamespace(selection_metrics={}))


def test_live_offers_are_each_users_latest_offer_with_an_open_window(tmp_path):
    from promoflow.settings import Settings
    from promoflow.warehouse import ANALYTICS_SCHEMA, Warehouse

    settings = Settings.from_env(env={"PROMO_DATA_DIR": str(tmp_path)})
    with Warehouse(settings) as wh:
        wh.execute(f"create schema if not exists {ANALYTICS_SCHEMA}")
        wh.execute(
            f"create table {ANALYTICS_SCHEMA}.fct_promo_outcomes "
            "(exposure_id text, user_id text, promo_id text, run_date date, sent_ts timestamp, window_end_ts timestamp)"
        )
        rows = [
            ("e1", "u1", "promo_a", None, "2026-10-28 09:00", "2026-11-04 09:00"),  # live
            ("e2", "u2", "promo_a", None, "2026-10-20 09:00", "2026-10-27 09:00"),  # ran out
            ("e3", "u3", "promo_a", None, "2026-10-28 09:00", "2026-11-04 09:00"),
            ("e4", "u3", "promo_b", "2026-10-30", "2026-10-30 09:00", "2026-11-01 09:00"),  # replaced promo_a
            ("e5", "u4", "promo_b", "2026-10-29", "2026-10-29 09:00", "2026-11-05 09:00"),
            ("e6", "u4", "none", "2026-10-30", "2026-10-30 09:00", "2026-11-06 09:00"),  # a control replaces nothing
            ("e7", "u5", "promo_a", None, "2026-10-31 08:00", "2026-11-07 08:00"),  # sent tonight: not yet
        ]
        for row in rows:
            wh.execute(f"insert into {ANALYTICS_SCHEMA}.fct_promo_outcomes values (?, ?, ?, ?, ?, ?)", list(row))
        before = decisions.live_offers(wh, RUN_DATE)  # no assignments published yet: nothing was expected
        wh.execute(
            f"create table {wh.default_schema}.promo_assignments "
            "(run_date date, user_id text, promo_id text, expected_incremental_margin double)"
        )
        for row in [
            ("2026-10-30", "u3", "promo_b", 2.5),
            ("2026-10-29", "u4", "promo_b", 1.5),
            ("2026-10-29", "u1", "none", 0.0),
        ]:
            wh.execute(f"insert into {wh.default_schema}.promo_assignments values (?, ?, ?, ?)", list(row))
        live = decisions.live_offers(wh, RUN_DATE)
    assert live["user_id"].tolist() == ["u1", "u3", "u4"] == before["user_id"].tolist()
    assert live["promo_id"].tolist() == ["promo_a", "promo_b", "promo_b"]
    assert [str(d) for d in live["live_until"]] == ["2026-11-04", "2026-11-01", "2026-11-05"]
    # what is left of each window at 00:00 of the run date: 105 of 168 hours, 33 of 48, 129 of 168
    np.testing.assert_allclose(live["remaining_share"], [105 / 168, 33 / 48, 129 / 168])
    # the platform's own sends carry what it expected of them; the landing's history none
    np.testing.assert_allclose(live["expected_at_send"], [np.nan, 2.5, 1.5])
    assert before["expected_at_send"].isna().all()


def test_active_arms_follow_the_catalogue_window():
    promos = pd.DataFrame(
        {
            "promo_id": ["promo_a", "promo_b"],
            "active_from": [date(2026, 10, 1), date(2026, 11, 1)],
            "active_to": [date(2026, 10, 31), date(2026, 11, 30)],
        }
    )
    assert active_arms(promos, ARMS, RUN_DATE).tolist() == [True, False, True]


def _training_frame(promo_ids, sent="2026-10-01"):
    from ml.feature_spec import NUMERIC_FEATURES

    n = len(promo_ids)
    frame = pd.DataFrame({name: np.ones(n) for name in NUMERIC_FEATURES})
    frame["promo_id"] = promo_ids
    frame["valid_days"] = 7.0
    frame["event_timestamp"] = pd.Timestamp(sent, tz="UTC")
    return frame


CATALOGUE = pd.DataFrame(
    {
        "promo_id": ["promo_a", "promo_b"],
        "valid_days": [7, 14],
        "active_from": [date(2026, 9, 1)] * 2,
        "active_to": [date(2026, 12, 31), date(2026, 10, 1)],
    }
)


def test_training_setup_says_why_nothing_can_be_learnt():
    from promoflow.decisions import NothingToLearn, training_setup

    assert training_setup(_training_frame([]), CATALOGUE, RUN_DATE) == NothingToLearn(
        "no matured exposures to learn from", 0
    )
    no_features = _training_frame(["none", "promo_a"])
    no_features["orders_30d"] = np.nan
    assert training_setup(no_features, CATALOGUE, RUN_DATE).reason.startswith("no exposure has features")
    only_offers = training_setup(_training_frame(["promo_a", "promo_b"]), CATALOGUE, RUN_DATE)
    assert only_offers.reason.endswith("no contrast to learn") and only_offers.rows == 2


def test_training_setup_keeps_rows_with_features_and_marks_matured_windows():
    from promoflow.decisions import TrainingSetup, training_setup

    frame = pd.concat([_training_frame(["none", "promo_a", "promo_b"]), _training_frame(["none"], sent="2026-10-25")])
    frame.loc[1, "spend_30d"] = np.nan
    setup = training_setup(frame.reset_index(drop=True), CATALOGUE, RUN_DATE)
    assert isinstance(setup, TrainingSetup)
    assert setup.rows_without_features == 1 and len(setup.frame) == 3
    assert setup.arms == ["promo_b"]  # promo_a's only row had no features; none is not a catalogue arm
    assert setup.active == {"promo_a": True, "promo_b": False}
    # the catalogue's longest window is 14 days: only the exposures of 2026-10-01 have matured
    assert setup.validation_candidates.tolist() == [True, True, False]


def test_training_keeps_every_row_of_a_random_share_of_users_beyond_its_row_cap():
    rng = np.random.default_rng(0)
    users = rng.integers(0, 20_000, 60_000)
    outcomes = pd.DataFrame({"user_id": [f"u{u}" for u in users], "converted": rng.random(60_000) < 0.1})
    assert decisions.sample_users(outcomes, 60_000, seed=7) is outcomes  # under the cap: untouched
    kept = decisions.sample_users(outcomes, 15_000, seed=7)
    assert 13_500 < len(kept) < 16_500
    by_user = outcomes.groupby("user_id").size()
    counts = kept.groupby("user_id").size()
    assert counts.equals(by_user.loc[counts.index])  # whole users
    assert kept.equals(decisions.sample_users(outcomes, 15_000, seed=7))  # a re-run keeps the same rows
    assert set(kept["user_id"]) != set(decisions.sample_users(outcomes, 15_000, seed=8)["user_id"])
    assert abs(kept["converted"].mean() - outcomes["converted"].mean()) < 0.01


def test_exploration_goes_where_the_evidence_is_thin_and_is_priced_by_it():
    """With nothing published, segment 0's offers are known losers and segment 1's are unknown:
    fewer explore than the rate says, segment 1 gets more of them, segment 0's explorers are mostly sent nothing, and the night's
    expected margin carries what the evidence says exploration costs."""
    fallback = _published(status="none")
    fallback.fitted = None
    n = 4000
    fallback.exploration = SimpleNamespace(
        segment=lambda f: np.arange(len(f)) % 2,
        mean=np.array([[-3.0, -3.0, 0.0], [0.2, 0.1, 0.0]]),
        se=np.array([[0.1, 0.1, 0.0], [1.0, 1.0, 0.0]]),
        rules=["tenure_days <= 1", "tenure_days > 1"],
    )
    plan = _plan(fallback, n=n, exploration_rate=0.1, budget=3000.0, reserve=1000.0)
    segment = np.arange(n) % 2
    explorers = [int((plan.is_exploration & (segment == s)).sum()) for s in (0, 1)]
    # the known losers' segment explores at about a fifth of the rate (ml.allocation.exploring_share)
    assert 0.05 * (~plan.is_holdout).sum() < sum(explorers) < round(0.1 * (~plan.is_holdout).sum())
    assert explorers[1] > 2 * explorers[0]
    offers = plan.is_exploration & (plan.chosen != ARMS.index("none"))
    assert (offers & (segment == 0)).sum() < 0.6 * explorers[0]  # half uniform over 3 arms: ~2/3 * 1/2
    expected = np.where(offers, fallback.exploration.mean[segment, plan.chosen], 0.0)
    np.testing.assert_allclose(plan.expected_margin, expected)
    assert [s["explorers"] for s in plan.exploration_segments] == explorers
    assert plan.expected_cost[plan.is_exploration].sum() <= 1000.0 + 1e-9
