"""Seeded demo shop: raw landing data in the data contract's layout, plus the ground truth.

In detail: docs/demo_shop.md, section "The simulator in detail (demo/simulator.py)".
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from promoflow import contract
from promoflow.contract import CHANNELS, PROMO_TYPES

GENERATOR_VERSION = "promoflow-demo-data-v1"
LOGGING_POLICY_VERSION = "random-logging-v0"
NO_OFFER_ARM = contract.NONE_ARM  # the control arm's promo_id in exposures and truth

# --------------------------------------------------------------------------- contract schemas
RAW_SCHEMAS: dict[str, pa.Schema] = contract.RAW_TABLES
SNAPSHOT_TABLES = contract.SNAPSHOT_TABLES
DAILY_TABLES = contract.DAILY_TABLES

# --------------------------------------------------------------------------- shop constants
REGIONS = ("north", "south", "east", "west", "central")
DEVICES = ("ios", "android", "web")
DEVICE_SHARES = (0.42, 0.38, 0.20)
# category -> (share of shoppers who prefer it, median list price)
CATEGORIES: dict[str, tuple[float, float]] = {
    "electronics": (0.10, 120.0),
    "fashion": (0.20, 38.0),
    "home": (0.14, 32.0),
    "beauty": (0.14, 17.0),
    "grocery": (0.16, 7.0),
    "sports": (0.10, 42.0),
    "toys": (0.08, 24.0),
    "books": (0.08, 14.0),
}
CATEGORY_NAMES = tuple(CATEGORIES)
CATEGORY_SHARES = np.array([share for share, _ in CATEGORIES.values()])
BRANDS_PER_CATEGORY = 6
# A flat fee below this basket value; free above it (the usual shop rule, and what
# makes a free_shipping offer worth something only to small-basket customers).
SHIPPING_FEE = 4.99
FREE_SHIPPING_FROM = 49.0
# Mon..Sun order/session rate multipliers (weekend shopping); mean 1.
WEEKDAY_FACTOR = np.array([0.95, 0.92, 0.93, 0.98, 1.05, 1.12, 1.05])

SEARCH_DEAL_WORDS = ("sale", "discount", "coupon", "cheap", "deal")
SEARCH_PLAIN_WORDS = ("", "best", "new", "gift", "top rated")
SEARCH_VOCABULARY = tuple(
    f"{word} {category}".strip() for word in SEARCH_PLAIN_WORDS + SEARCH_DEAL_WORDS for category in CATEGORY_NAMES
)

DAILY_EXPOSURE_SHARE = 0.08  # share of users the logging policy sends something each day
# Offer fatigue (see _Fatigue): each offer a user has seen adds 1 to their offer load, which
# halves every FATIGUE_HALF_LIFE_DAYS; a new offer's lift above 1 shrinks by
# exp(-sensitivity x load at send), and each offer seen may make them unsubscribe from its
# channel with probability UNSUBSCRIBE_BASE + UNSUBSCRIBE_PER_LOAD x sensitivity x load.
FATIGUE_HALF_LIFE_DAYS = 7.0
UNSUBSCRIBE_BASE = 0.002
UNSUBSCRIBE_PER_LOAD = 0.12
UNSUBSCRIBE_MAX = 0.5
DUPLICATE_EVENT_SHARE = 0.005  # events redelivered in part-1.parquet with the same event_id
US_PER_DAY = 86_400_000_000
US_PER_S = 1_000_000

SEGMENTS = ("sure_thing", "persuadable", "sleeping_dog", "indifferent")
# Who responds to offers: "latent" (default) - a noisy draw on hidden traits that behaviour
# reveals only faintly; "observable" - another shop where tenure, favourite category and
# order frequency (all visible to the platform) decide it, with little noise and strong
# lifts: a positive control. The evaluation runs both, so a platform tuned to one shape is
# caught on the other, and "never send anything" cannot pass for learning.
RESPONSE_SHAPES = ("latent", "observable")
# How items are chosen: "category" (default) - the user's favourite category, then a price
# position in it (so "most popular items of the top category" is near the best ranking);
# "collaborative" - latent user and item taste vectors, items bought together and repeat
# purchases (see _CollaborativeChoice), where a learned recommender can beat that rule.
ITEM_SHAPES = ("category", "collaborative")


@dataclass(frozen=True)
class PromoSpec:
    """One catalogue offer and its hidden response parameters."""

    promo_id: str
    promo_type: str
    value: float
    min_spend: float
    max_discount: float | None
    category: str | None
    channel: str | None
    valid_days: int
    # How strongly the offer moves a persuadable (0..1); hidden from the platform.
    persuasion_strength: float
    # Relative weight in the randomised logging policy ('none' has LOGGING_WEIGHT_NONE).
    logging_weight: float


LOGGING_WEIGHT_NONE = 2.0
CATALOGUE: tuple[PromoSpec, ...] = (
    PromoSpec("p_pct10", "percent_off", 10.0, 0.0, 15.0, None, None, 7, 0.65, 1.0),
    PromoSpec("p_pct20", "percent_off", 20.0, 30.0, 30.0, None, None, 5, 1.00, 1.0),
    PromoSpec("p_amt5", "amount_off", 5.0, 25.0, None, None, None, 7, 0.60, 1.0),
    PromoSpec("p_spend60_save12", "spend_threshold", 12.0, 60.0, None, None, None, 10, 0.85, 1.0),
    PromoSpec("p_freeship", "free_shipping", SHIPPING_FEE, 0.0, SHIPPING_FEE, None, "push", 3, 0.70, 1.0),
    # The rarer arm of the logging policy: gifts are costly to stock.
    PromoSpec("p_gift_tote", "gift", 6.0, 40.0, None, None, None, 14, 0.55, 0.5),
    PromoSpec("p_beauty15", "percent_off", 15.0, 0.0, 20.0, "beauty", None, 7, 0.90, 1.0),
    PromoSpec("p_elec_amt20", "amount_off", 20.0, 100.0, None, "electronics", "email", 14, 0.90, 1.0),
)
ACTIVE_AFTER_RUN_DAYS = 60  # offers stay assignable this long after the simulated period


@dataclass(frozen=True)
class GenerationSummary:
    """What one :func:`generate` call wrote."""

    raw_dir: str
    truth_dir: str
    seed: int
    n_users: int
    n_items: int
    n_promotions: int
    n_days: int
    start_date: date
    run_date: date  # first date whose decisions the data supports (start_date + n_days)
    n_events: int  # distinct events (part-0 files)
    n_duplicate_events: int  # redelivered copies in part-1 files
    n_orders: int
    n_redeemed_orders: int
    n_exposures: int
    n_truth_rows: int
    seconds: float

    def one_line(self) -> str:
        return (
            f"demo data seed={self.seed}: {self.n_users} users, {self.n_items} items, "
            f"{self.n_promotions} promos, {self.n_days} days {self.start_date}..{self.run_date - timedelta(days=1)} "
            f"(run_date {self.run_date}); {self.n_events} events (+{self.n_duplicate_events} duplicates), "
            f"{self.n_orders} orders ({self.n_redeemed_orders} with a promo), {self.n_exposures} exposures, "
            f"{self.n_truth_rows} truth rows -> {self.raw_dir} | {self.truth_dir} in {self.seconds:.1f}s"
        )


# =========================================================================== building blocks
@dataclass
class _Items:
    ids: pa.Array
    category: np.ndarray  # int category code per item
    price: np.ndarray
    unit_cost: np.ndarray
    # Items of each category sorted by price, concatenated: lets a draw pick "a cheap
    # beauty item" with one vectorised index computation.
    by_category_price: np.ndarray
    category_offset: np.ndarray
    category_count: np.ndarray
    by_price: np.ndarray  # all items sorted by price (for spend-threshold top-ups)
    choice: _CollaborativeChoice | None = None  # item_shape="collaborative": picks items instead of the rule below


@dataclass
class _Users:
    ids: pa.Array
    segment: np.ndarray  # index into SEGMENTS
    base_order_rate: np.ndarray  # expected orders per day without an offer (weekday mean)
    session_rate: np.ndarray  # expected browsing sessions per day
    extra_items_mean: np.ndarray  # basket size = 1 + Poisson(this)
    cheapness: np.ndarray  # exponent >1 => picks cheaper items within a category
    preferred_category: np.ndarray
    preferred_hour: np.ndarray
    price_sensitivity: np.ndarray
    deal_proneness: np.ndarray
    hesitancy: np.ndarray  # cart-without-order tendency
    redeem_prob: np.ndarray  # P(use an applicable offer on an order)
    topup_prob: np.ndarray  # P(add an item to reach an offer's min_spend when close)
    base_lift: np.ndarray  # persuadables' peak lift before type/strength/category fit
    lift: np.ndarray  # (n_users, n_promos) order-rate multiplier while an offer is live


def _id_strings(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    """``prefix`` + zero-padded numbers, built in Arrow (fast at tens of millions)."""
    digits = pc.utf8_lpad(pc.cast(pa.array(numbers, pa.int64()), pa.string()), width, "0")
    return pc.binary_join_element_wise(prefix, digits, "")


def _date_to_us(day: date) -> int:
    return (day - date(1970, 1, 1)).days * US_PER_DAY


def _build_items(rng: np.random.Generator, n_items: int) -> tuple[_Items, pa.Table]:
    category = rng.choice(len(CATEGORY_NAMES), size=n_items, p=CATEGORY_SHARES)
    # Every category needs at least one item so any preference can be served.
    category[: len(CATEGORY_NAMES)] = np.arange(len(CATEGORY_NAMES))
    median_price = np.array([median for _, median in CATEGORIES.values()])[category]
    price = np.round(median_price * rng.lognormal(0.0, 0.55, n_items), 2).clip(0.99, None)
    unit_cost = np.round(price * rng.uniform(0.45, 0.75, n_items), 2)
    brand_number = rng.integers(0, BRANDS_PER_CATEGORY, n_items)
    brand_names = np.array(
        [f"{CATEGORY_NAMES[c]}-brand-{b}" for c in range(len(CATEGORY_NAMES)) for b in range(BRANDS_PER_CATEGORY)]
    )
    brand = pa.array(brand_names[category * BRANDS_PER_CATEGORY + brand_number], mask=rng.random(n_items) < 0.08)

    ids = _id_strings("i", np.arange(n_items), max(4, len(str(n_items - 1))))
    order = np.lexsort((price, category))
    counts = np.bincount(category, minlength=len(CATEGORY_NAMES))
    items = _Items(
        ids=ids,
        category=category,
        price=price,
        unit_cost=unit_cost,
        by_category_price=order,
        category_offset=np.concatenate([[0], np.cumsum(counts)[:-1]]),
        category_count=counts,
        by_price=np.argsort(price, kind="stable"),
    )
    table = pa.Table.from_arrays(
        [ids, pa.array(np.array(CATEGORY_NAMES)[category]), brand, pa.array(price), pa.array(unit_cost)],
        schema=RAW_SCHEMAS["items"],
    )
    return items, table


def _draw_tenure_days(rng: np.random.Generator, n: int) -> np.ndarray:
    """Days between signup and the simulation's start: 10% new customers (1-45 days)."""
    return np.where(rng.random(n) < 0.1, rng.uniform(1, 45, n), rng.uniform(45, 3 * 365, n))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _build_users(
    rng: np.random.Generator,
    n_users: int,
    start_date: date,
    catalogue: tuple[PromoSpec, ...],
    response_shape: str = "latent",
    shape_rng: np.random.Generator | None = None,
) -> tuple[_Users, pa.Table]:
    n = n_users
    deal_proneness = rng.beta(2.0, 4.0, n)
    # Price sensitivity and deal-proneness go together, but far from perfectly.
    price_sensitivity = np.clip(0.55 * rng.beta(2.0, 3.0, n) + 0.45 * deal_proneness + rng.normal(0, 0.05, n), 0, 1)
    hesitancy = rng.beta(2.0, 5.0, n)

    # Heavy-tailed order rate: most users order a few times a quarter, a minority
    # ("sure things") every few days and need no incentive at all.
    order_rate = rng.lognormal(np.log(0.009), 0.85, n)
    sure_thing = rng.random(n) < 0.08
    order_rate[sure_thing] = rng.lognormal(np.log(0.16), 0.45, sure_thing.sum())
    order_rate = order_rate.clip(0.0005, 0.9)
    rate_z = (np.log(order_rate) - np.log(0.009)) / 0.85

    # Segment membership depends on traits the platform can observe, through a noisy,
    # non-linear score: deal-prone, price-sensitive, hesitant, not-already-frequent
    # shoppers are the persuadables; low-deal-prone, price-insensitive ones the
    # sleeping dogs (offers feel like spam to them).
    persuadable_score = (
        -2.0
        + 5.0 * (deal_proneness - 0.33)
        + 3.0 * (price_sensitivity - 0.4) ** 2 * np.sign(price_sensitivity - 0.4)
        + 4.0 * (hesitancy - 0.28)
        - 0.5 * np.abs(rate_z)
        + rng.normal(0, 0.8, n)
    )
    sleeping_score = -2.7 - 6.0 * (deal_proneness - 0.33) - 2.0 * (price_sensitivity - 0.4) + rng.normal(0, 0.8, n)
    p_persuadable = _sigmoid(persuadable_score)
    p_sleeping = _sigmoid(sleeping_score)
    draw = rng.random(n)
    segment = np.full(n, SEGMENTS.index("indifferent"))
    segment[draw < p_persuadable + p_sleeping] = SEGMENTS.index("sleeping_dog")
    segment[draw < p_persuadable] = SEGMENTS.index("persuadable")
    segment[sure_thing] = SEGMENTS.index("sure_thing")

    preferred_category = rng.choice(len(CATEGORY_NAMES), size=n, p=CATEGORY_SHARES)
    tenure_days = None
    if response_shape == "observable":
        # Another shop, and the evaluation's positive control: who responds is told by what
        # the platform observes almost exactly (tenure, favourite category, how often they
        # order), with little noise, and persuadables respond strongly (peak lift 4-9, set
        # below). New customers (first ~75 days) and beauty shoppers who order rarely are
        # the persuadables; long-standing customers of electronics/home react badly. A
        # platform that never finds value here is not learning from its data.
        shape_rng = shape_rng if shape_rng is not None else np.random.default_rng(0)
        tenure_days = _draw_tenure_days(shape_rng, n)
        new_customer = tenure_days < 45  # signed up within 45 days of the first simulated day
        beauty = preferred_category == CATEGORY_NAMES.index("beauty")
        premium = np.isin(
            preferred_category, [CATEGORY_NAMES.index(c) for c in ("electronics", "home") if c in CATEGORY_NAMES]
        )
        persuadable_score = (
            -1.2 + 2.6 * new_customer + 1.4 * beauty - 0.6 * np.clip(rate_z, 0, None) + shape_rng.normal(0, 0.4, n)
        )
        sleeping_score = -1.0 + 1.4 * (premium & (tenure_days > 365)) - 0.8 * new_customer + shape_rng.normal(0, 0.4, n)
        segment = np.full(n, SEGMENTS.index("indifferent"))
        segment[sleeping_score > 0] = SEGMENTS.index("sleeping_dog")
        segment[persuadable_score > 0] = SEGMENTS.index("persuadable")
        segment[sure_thing] = SEGMENTS.index("sure_thing")
    elif response_shape != "latent":
        raise ValueError(f"response_shape {response_shape!r}: one of {RESPONSE_SHAPES}")
    hour_kind = rng.choice(3, size=n, p=[0.6, 0.25, 0.15])
    preferred_hour = np.select(
        [hour_kind == 0, hour_kind == 1], [rng.integers(18, 23, n), rng.integers(11, 15, n)], rng.integers(0, 24, n)
    )
    # Sleeping dogs skew premium (bigger baskets, pricier items).
    is_sleeping = segment == SEGMENTS.index("sleeping_dog")
    extra_items_mean = rng.lognormal(np.log(1.0), 0.5, n) * np.where(is_sleeping, 1.3, 1.0)
    cheapness = 0.6 + 2.5 * price_sensitivity
    # Browsing rises with ordering, but persuadables browse more than they buy.
    is_persuadable = segment == SEGMENTS.index("persuadable")
    session_rate = rng.lognormal(0.0, 0.5, n) * (0.035 + 1.3 * order_rate) * np.where(is_persuadable, 1.5, 1.0)

    redeem_prob = 0.15 + 0.75 * deal_proneness
    redeem_prob = np.where(is_persuadable, np.maximum(redeem_prob, 0.75), redeem_prob)
    redeem_prob = np.where(sure_thing, rng.uniform(0.85, 0.97, n), redeem_prob)
    topup_prob = 0.7 * deal_proneness

    # Which offer types a persuadable responds to follows their observable habits.
    small_basket = np.exp(-extra_items_mean)  # ~1 for single-item buyers
    type_affinity = {
        "percent_off": 0.35 + 0.9 * price_sensitivity,
        "amount_off": 0.35 + 0.6 * price_sensitivity + 0.3 * small_basket,
        "spend_threshold": 0.2 + 0.9 * (1.0 - small_basket),
        "free_shipping": 0.15 + 1.0 * small_basket,
        "gift": rng.uniform(0.1, 1.0, n),  # idiosyncratic: hardly predictable
    }
    for name in type_affinity:
        type_affinity[name] = np.clip(type_affinity[name] + rng.normal(0, 0.15, n), 0.0, 1.3)
    base_lift = 1.5 + 2.5 * rng.beta(2.0, 2.0, n)  # peak lift 1.5..4
    if response_shape == "observable":
        base_lift = (
            1.0 + 2.0 * base_lift
        )  # welcome-offer strength: peak lift 4..9 (same draws, latent stream untouched)

    n_promos = len(catalogue)
    # Indifferent users and sure things: 1 or a touch below (inbox fatigue); an offer
    # never makes them order more.
    lift = np.exp(-np.abs(rng.normal(0.0, 0.03, (n, n_promos))))
    for p, promo in enumerate(catalogue):
        fit = type_affinity[promo.promo_type] * promo.persuasion_strength
        if promo.category is not None:
            fit = fit * np.where(preferred_category == CATEGORY_NAMES.index(promo.category), 1.1, 0.0)
        persuaded = 1.0 + (base_lift - 1.0) * np.clip(fit, 0.0, 1.0)
        lift[is_persuadable, p] = persuaded[is_persuadable] * lift[is_persuadable, p]
    # Sleeping dogs: every offer lowers their ordering; the loudest (fixed-channel push/
    # email) a bit more.
    annoyance = rng.uniform(0.45, 0.9, n)
    for p, promo in enumerate(catalogue):
        extra = 0.9 if promo.channel is not None else 1.0
        lift[is_sleeping, p] = (annoyance * extra * np.exp(rng.normal(0, 0.05, n)))[is_sleeping]

    users = _Users(
        ids=_id_strings("u", np.arange(n), max(6, len(str(n - 1)))),
        segment=segment,
        base_order_rate=order_rate,
        session_rate=session_rate,
        extra_items_mean=extra_items_mean,
        cheapness=cheapness,
        preferred_category=preferred_category,
        preferred_hour=preferred_hour,
        price_sensitivity=price_sensitivity,
        deal_proneness=deal_proneness,
        hesitancy=hesitancy,
        redeem_prob=redeem_prob,
        topup_prob=topup_prob,
        base_lift=np.where(is_persuadable, base_lift, 1.0),
        lift=lift,
    )

    start_us = _date_to_us(start_date)
    drawn_tenure = _draw_tenure_days(rng, n)  # drawn in every shape: the latent shape's stream stays as it was
    tenure_days = drawn_tenure if tenure_days is None else tenure_days
    signup_us = start_us - (tenure_days * US_PER_DAY).astype(np.int64)
    emails = pc.binary_join_element_wise(users.ids, "@example.com", "")  # fake PII
    email_missing = pa.array(rng.random(n) < 0.03)
    table = pa.Table.from_arrays(
        [
            users.ids,
            pa.array(signup_us, contract.UTC_TIMESTAMP),
            pa.array(np.array(REGIONS)[rng.integers(0, len(REGIONS), n)]),
            pa.array(np.array(DEVICES)[rng.choice(len(DEVICES), size=n, p=DEVICE_SHARES)]),
            pc.if_else(email_missing, pa.scalar(None, pa.string()), emails),
        ],
        schema=RAW_SCHEMAS["users"],
    )
    return users, table


def _promotions_table(catalogue: tuple[PromoSpec, ...], start_date: date, run_date: date) -> pa.Table:
    active_to = run_date + timedelta(days=ACTIVE_AFTER_RUN_DAYS)
    columns = {
        "promo_id": [p.promo_id for p in catalogue],
        "promo_type": [p.promo_type for p in catalogue],
        "value": [p.value for p in catalogue],
        "min_spend": [p.min_spend for p in catalogue],
        "max_discount": [p.max_discount for p in catalogue],
        "category": [p.category for p in catalogue],
        "channel": [p.channel for p in catalogue],
        "valid_days": [p.valid_days for p in catalogue],
        "active_from": [start_date] * len(catalogue),
        "active_to": [active_to] * len(catalogue),
    }
    return pa.Table.from_pydict(columns, schema=RAW_SCHEMAS["promotions"])


def logging_policy(
    catalogue_promo_ids: list[str] | tuple[str, ...] = tuple(p.promo_id for p in CATALOGUE),
) -> dict[str, float]:
    """Arm -> probability of the randomised logging policy, given the active promo ids.

    'none' is twice as likely as a regular promo and the gift half as likely, so
    propensities differ by arm (off-policy estimators must weight by them).
    """
    weights = {NO_OFFER_ARM: LOGGING_WEIGHT_NONE}
    by_id = {p.promo_id: p for p in CATALOGUE}
    for promo_id in catalogue_promo_ids:
        weights[promo_id] = by_id[promo_id].logging_weight if promo_id in by_id else 1.0
    total = sum(weights.values())
    return {arm: weight / total for arm, weight in weights.items()}


# =========================================================================== orders
def _pick_items(
    rng: np.random.Generator,
    user_of_pick: np.ndarray,
    users: _Users,
    items: _Items,
    preferred_share: float,
    group: np.ndarray | None = None,
    purchase: bool = False,
) -> np.ndarray:
    """One item per entry of ``user_of_pick``: mostly from the user's favourite category,
    cheaper items for price-sensitive users. ``group`` (basket or session of each pick,
    contiguous) and ``purchase`` matter to the collaborative shape only."""
    if items.choice is not None:  # its own random stream: the category shape's stays as it was
        return items.choice.pick(user_of_pick, group, purchase)
    n = len(user_of_pick)
    random_category = rng.choice(len(CATEGORY_NAMES), size=n, p=CATEGORY_SHARES)
    category = np.where(rng.random(n) < preferred_share, users.preferred_category[user_of_pick], random_category)
    position = rng.random(n) ** users.cheapness[user_of_pick]
    within = np.minimum(
        (position * items.category_count[category]).astype(np.int64), items.category_count[category] - 1
    )
    return items.by_category_price[items.category_offset[category] + within]


@dataclass
class _Baskets:
    """Order contents before any offer: ``line_order[k]`` is the order of line ``k``."""

    line_order: np.ndarray
    line_item: np.ndarray
    gross: np.ndarray
    cogs: np.ndarray
    subtotal_by_category: dict[str, np.ndarray]  # only categories some promo is limited to


def _draw_baskets(
    rng: np.random.Generator, order_user: np.ndarray, users: _Users, items: _Items, limited_categories: list[str]
) -> _Baskets:
    n_orders = len(order_user)
    n_lines = np.minimum(1 + rng.poisson(users.extra_items_mean[order_user]), 12)
    line_order = np.repeat(np.arange(n_orders), n_lines)
    line_item = _pick_items(
        rng, order_user[line_order], users, items, preferred_share=0.65, group=line_order, purchase=True
    )
    line_price = items.price[line_item]
    gross = np.bincount(line_order, weights=line_price, minlength=n_orders)
    cogs = np.bincount(line_order, weights=items.unit_cost[line_item], minlength=n_orders)
    subtotals = {
        name: np.bincount(
            line_order,
            weights=line_price * (items.category[line_item] == CATEGORY_NAMES.index(name)),
            minlength=n_orders,
        )
        for name in limited_categories
    }
    return _Baskets(line_order, line_item, gross, cogs, subtotals)


def _topup_items(rng: np.random.Generator, gap: np.ndarray, items: _Items) -> np.ndarray:
    """An item that closes a spend gap: among the cheapest items priced at least ``gap``."""
    sorted_prices = items.price[items.by_price]
    position = np.searchsorted(sorted_prices, gap) + rng.integers(0, 4, len(gap))
    return items.by_price[np.minimum(position, len(sorted_prices) - 1)]


def _topup_applies(promo: PromoSpec, gross: np.ndarray) -> np.ndarray:
    """Orders close enough below a whole-shop threshold that a customer might add an item."""
    if promo.min_spend <= 0 or promo.category is not None:
        return np.zeros(len(gross), dtype=bool)
    return (gross < promo.min_spend) & (gross >= 0.65 * promo.min_spend)


def _shipping_fee(gross: np.ndarray) -> np.ndarray:
    return np.where(gross < FREE_SHIPPING_FROM, SHIPPING_FEE, 0.0)


def _offer_discount(
    promo: PromoSpec, gross: np.ndarray, category_subtotal: np.ndarray | None, shipping_fee: np.ndarray
) -> np.ndarray:
    """Discount the offer gives an order if redeemed; 0 where the order does not qualify."""
    base = gross if promo.category is None else category_subtotal
    qualifies = (base > 0) & (base >= promo.min_spend)
    if promo.promo_type == "percent_off":
        discount = promo.value / 100.0 * base
    elif promo.promo_type in ("amount_off", "spend_threshold"):
        discount = np.minimum(promo.value, base)
    elif promo.promo_type == "free_shipping":
        discount = shipping_fee
    elif promo.promo_type == "gift":
        discount = np.full(len(gross), promo.value)
    else:
        raise ValueError(
            f"promo {promo.promo_id}: unknown promo_type {promo.promo_type!r}; expected one of {PROMO_TYPES}"
        )
    if promo.max_discount is not None:
        discount = np.minimum(discount, promo.max_discount)
    return np.round(np.where(qualifies, discount, 0.0), 2)


# =========================================================================== item choice: the collaborative shape
TASTE_DIMENSIONS = 8
CATEGORY_TASTE_WEIGHT = 1.0  # a category's shared taste direction, next to each item's / user's own (weight 1)
TASTE_SCALE = 1.6  # sharpness of the softmax over taste scores
PREFERENCE_CANDIDATES = 50  # a taste-driven pick draws among the user's 50 best items
TRUTH_PREFERENCE_ITEMS = 20  # rows per user in truth/user_item_preference.parquet
OFF_TASTE_SHARE = 0.1  # picks of a popular item regardless of taste
COMPANIONS_PER_ITEM = 4
COMPANION_SHARE = 0.45  # later lines of a basket / views of a session that follow its first item
HISTORY_LENGTH = 16  # purchases remembered per user for repeat purchases
_USER_BATCH = 20_000


@dataclass
class _CollaborativeChoice:
    """Item choice from latent tastes, items bought / viewed together and repeat purchases.

    A pick is (1) with probability ``OFF_TASTE_SHARE`` an item drawn by global appeal, else
    one of the user's ``PREFERENCE_CANDIDATES`` best items by softmax of
    ``TASTE_SCALE * user_taste . item_taste / sqrt(d) + appeal - price_aversion * z(log price)``;
    (2) for a purchase, with the user's ``repeat_prob``, an item the user bought before; (3) on
    a later line of a basket or view of a session, with ``COMPANION_SHARE``, a companion of the
    group's first item (``COMPANIONS_PER_ITEM`` per item, drawn by taste similarity). Taste
    vectors share a direction per category, so the favourite category still tells a part.
    """

    rng: np.random.Generator
    candidates: np.ndarray  # [n_users, M] item indices, most preferred first
    candidate_probability: np.ndarray  # [n_users, M] probability of a taste-driven pick
    companions: np.ndarray  # [n_items, C]
    appeal_cdf: np.ndarray  # [n_items] cumulative pick probability of an off-taste pick
    repeat_prob: np.ndarray  # [n_users]
    history: np.ndarray  # [n_users, HISTORY_LENGTH] purchased items, a ring (-1 = empty)
    history_count: np.ndarray  # [n_users] purchases recorded
    recording: bool = True
    _cdf: np.ndarray | None = None

    def _taste_picks(self, user: np.ndarray) -> np.ndarray:
        """Inverse-CDF draws from each user's candidates, in chunks (picks x candidates stays small)."""
        m = self.candidates.shape[1]
        cdf = np.cumsum(self.candidate_probability, axis=1, dtype=np.float32) if self._cdf is None else self._cdf
        self._cdf = cdf
        draw = self.rng.random(len(user)).astype(np.float32)
        column = np.empty(len(user), np.int64)
        for lo in range(0, len(user), 200_000):
            chunk = slice(lo, lo + 200_000)
            column[chunk] = (cdf[user[chunk]] < draw[chunk, None]).sum(axis=1)
        return self.candidates[user, np.minimum(column, m - 1)]

    def pick(self, user: np.ndarray, group: np.ndarray | None, purchase: bool) -> np.ndarray:
        n = len(user)
        item = self._taste_picks(user)
        off_taste = self.rng.random(n) < OFF_TASTE_SHARE
        popular = np.minimum(np.searchsorted(self.appeal_cdf, self.rng.random(n)), len(self.appeal_cdf) - 1)
        item = np.where(off_taste, popular, item)
        if purchase:
            remembered = np.minimum(self.history_count[user], HISTORY_LENGTH)
            repeat = (remembered > 0) & (self.rng.random(n) < self.repeat_prob[user])
            slot = (self.rng.random(n) * np.maximum(remembered, 1)).astype(np.int64)
            item = np.where(repeat, self.history[user, slot], item)
        if group is not None and n:
            first = np.r_[True, group[1:] != group[:-1]]
            anchor = np.maximum.accumulate(np.where(first, np.arange(n), 0))
            together = ~first & (self.rng.random(n) < COMPANION_SHARE)
            companion = self.companions[item[anchor], self.rng.integers(0, self.companions.shape[1], n)]
            item = np.where(together, companion, item)
        if purchase and self.recording:
            self._record(user, item)
        return item

    def _record(self, user: np.ndarray, item: np.ndarray) -> None:
        order = np.argsort(user, kind="stable")
        sorted_user = user[order]
        first = np.r_[True, sorted_user[1:] != sorted_user[:-1]] if len(user) else np.zeros(0, bool)
        rank = np.arange(len(user)) - np.maximum.accumulate(np.where(first, np.arange(len(user)), 0))
        slot = (self.history_count[sorted_user] + rank) % HISTORY_LENGTH
        self.history[sorted_user, slot] = item[order]
        self.history_count += np.bincount(user, minlength=len(self.history_count))

    def preference_table(self, user_ids: pa.Array, item_ids: pa.Array) -> pa.Table:
        """The true item preferences: each user's ``TRUTH_PREFERENCE_ITEMS`` most likely items of
        one taste-driven pick (off-taste share included), most likely first."""
        n_users = self.candidates.shape[0]
        appeal = np.diff(np.r_[0.0, self.appeal_cdf])
        probability = (1.0 - OFF_TASTE_SHARE) * self.candidate_probability + OFF_TASTE_SHARE * appeal[self.candidates]
        order = np.argsort(-probability, axis=1, kind="stable")[:, :TRUTH_PREFERENCE_ITEMS]
        top_items = np.take_along_axis(self.candidates, order, axis=1)
        top_probability = np.take_along_axis(probability, order, axis=1)
        k = top_items.shape[1]
        return pa.table(
            {
                "user_id": user_ids.take(pa.array(np.repeat(np.arange(n_users), k))),
                "item_id": item_ids.take(pa.array(top_items.ravel())),
                "preference_rank": pa.array(np.tile(np.arange(1, k + 1), n_users).astype(np.int32)),
                "pick_probability": pa.array(top_probability.ravel()),
            }
        )


def _item_preference_table(users: _Users, items: _Items) -> pa.Table:
    """truth/user_item_preference.parquet: per user the ``TRUTH_PREFERENCE_ITEMS`` items most
    likely to be picked by one browsing pick, with that probability (no random draws)."""
    if items.choice is not None:
        return items.choice.preference_table(users.ids, items.ids)
    # The category shape (_pick_items with a view's preferred_share 0.7): P(category) x
    # P(price position), where position = U ** cheapness picks rank j of n with
    # ((j + 1) / n) ** (1 / cheapness) - (j / n) ** (1 / cheapness).
    n_users, n_items = len(users.preferred_category), len(items.price)
    rank = np.empty(n_items, np.int64)
    for c in range(len(CATEGORY_NAMES)):
        members = items.by_category_price[items.category_offset[c] : items.category_offset[c] + items.category_count[c]]
        rank[members] = np.arange(len(members))
    n_in_category = items.category_count[items.category].astype(np.float64)
    k = min(TRUTH_PREFERENCE_ITEMS, n_items)
    top_items = np.empty((n_users, k), np.int64)
    top_probability = np.empty((n_users, k))
    for lo in range(0, n_users, _USER_BATCH):
        hi = min(lo + _USER_BATCH, n_users)
        exponent = 1.0 / users.cheapness[lo:hi, None]
        position = ((rank + 1) / n_in_category)[None, :] ** exponent - (rank / n_in_category)[None, :] ** exponent
        category = 0.3 * CATEGORY_SHARES[items.category][None, :] + 0.7 * (
            items.category[None, :] == users.preferred_category[lo:hi, None]
        )
        probability = category * position
        order = np.argsort(-probability, axis=1, kind="stable")[:, :k]
        top_items[lo:hi] = order
        top_probability[lo:hi] = np.take_along_axis(probability, order, axis=1)
    return pa.table(
        {
            "user_id": users.ids.take(pa.array(np.repeat(np.arange(n_users), k))),
            "item_id": items.ids.take(pa.array(top_items.ravel())),
            "preference_rank": pa.array(np.tile(np.arange(1, k + 1), n_users).astype(np.int32)),
            "pick_probability": pa.array(top_probability.ravel()),
        }
    )


def _item_choice(item_shape: str, seed: int, users: _Users, items: _Items) -> _CollaborativeChoice | None:
    """None for the category shape; the collaborative shape's chooser on its own random stream."""
    if item_shape == "category":
        return None
    if item_shape != "collaborative":
        raise ValueError(f"item_shape {item_shape!r}: one of {ITEM_SHAPES}")
    rng = np.random.default_rng([seed, 20_261_201])
    n_users, n_items = len(users.preferred_category), len(items.price)
    centres = rng.normal(0.0, 1.0, (len(CATEGORY_NAMES), TASTE_DIMENSIONS))
    item_taste = CATEGORY_TASTE_WEIGHT * centres[items.category] + rng.normal(0.0, 1.0, (n_items, TASTE_DIMENSIONS))
    user_taste = CATEGORY_TASTE_WEIGHT * centres[users.preferred_category] + rng.normal(
        0.0, 1.0, (n_users, TASTE_DIMENSIONS)
    )
    appeal = rng.normal(0.0, 0.6, n_items)
    log_price = np.log(items.price)
    price_z = (log_price - log_price.mean()) / max(log_price.std(), 1e-9)
    price_aversion = 0.5 * (users.cheapness - users.cheapness.mean())
    m = min(PREFERENCE_CANDIDATES, n_items)
    candidates = np.empty((n_users, m), np.int64)
    candidate_probability = np.empty((n_users, m))
    scale = TASTE_SCALE / np.sqrt(TASTE_DIMENSIONS)
    for lo in range(0, n_users, _USER_BATCH):
        hi = min(lo + _USER_BATCH, n_users)
        score = (
            scale * user_taste[lo:hi] @ item_taste.T + appeal[None, :] - price_aversion[lo:hi, None] * price_z[None, :]
        )
        top = (
            np.argpartition(-score, m - 1, axis=1)[:, :m] if m < n_items else np.tile(np.arange(n_items), (hi - lo, 1))
        )
        top_score = np.take_along_axis(score, top, axis=1)
        order = np.argsort(-top_score, axis=1, kind="stable")
        candidates[lo:hi] = np.take_along_axis(top, order, axis=1)
        weight = np.exp(np.take_along_axis(top_score, order, axis=1) - top_score.max(axis=1, keepdims=True))
        candidate_probability[lo:hi] = weight / weight.sum(axis=1, keepdims=True)
    similarity = scale * item_taste @ item_taste.T + rng.gumbel(0.0, 1.0, (n_items, n_items))
    np.fill_diagonal(similarity, -np.inf)
    c = min(COMPANIONS_PER_ITEM, n_items - 1)
    companions = np.argpartition(-similarity, c - 1, axis=1)[:, :c]
    appeal_weight = np.exp(appeal)
    return _CollaborativeChoice(
        rng=rng,
        candidates=candidates,
        candidate_probability=candidate_probability,
        companions=companions,
        appeal_cdf=np.cumsum(appeal_weight) / appeal_weight.sum(),
        repeat_prob=rng.beta(2.0, 5.0, n_users),
        history=np.full((n_users, HISTORY_LENGTH), -1, np.int64),
        history_count=np.zeros(n_users, np.int64),
    )


# =========================================================================== one simulated day
@dataclass
class _OfferState:
    """Each user's live offer (the most recent one seen; a 'none' exposure changes nothing)."""

    promo: np.ndarray  # catalogue index, -1 = no offer
    sent_us: np.ndarray
    end_day: np.ndarray  # first day index the offer no longer counts
    damp: np.ndarray | None = None  # the live offer's fatigue factor on its lift above 1 (None: 1)


@dataclass
class _Fatigue:
    """Hidden offer fatigue: repeat offers lose effect, and over-sent users leave a channel.

    ``load`` is the user's decayed count of offers seen, as of day ``load_day``; an offer sent
    on a channel the user has unsubscribed from (``unsubscribed``) is never seen: no lift, no
    redemption, the user keeps the offer they hold. Its own random stream, so that turning it
    off changes no other draw.
    """

    sensitivity: np.ndarray  # >= 0, per user
    load: np.ndarray
    load_day: np.ndarray
    unsubscribed: np.ndarray  # (n_users, len(CHANNELS)) bool
    rng: np.random.Generator

    @classmethod
    def draw(cls, seed: int, users: _Users) -> _Fatigue:
        rng = np.random.default_rng([seed, 20_261_203])
        n = len(users.base_order_rate)
        # deal-seekers tolerate offers better than those who never use them
        sensitivity = rng.gamma(2.0, 0.15, n) * (1.5 - users.deal_proneness)
        return cls(sensitivity, np.zeros(n), np.zeros(n, np.int64), np.zeros((n, len(CHANNELS)), bool), rng)

    def load_on(self, day_index: int, user: np.ndarray | slice = slice(None)) -> np.ndarray:
        age = day_index - self.load_day[user]
        return self.load[user] * np.exp2(-age / FATIGUE_HALF_LIFE_DAYS)

    def damp_on(self, day_index: int, user: np.ndarray | slice = slice(None)) -> np.ndarray:
        """The factor on the lift above 1 of an offer the user would see on ``day_index``."""
        return np.exp(-self.sensitivity[user] * self.load_on(day_index, user))

    def see(self, day_index: int, user: np.ndarray, channel: np.ndarray) -> np.ndarray:
        """Users see these offers: returns their fatigue factors; adds the load, draws unsubscribes."""
        load = self.load_on(day_index, user)
        damp = np.exp(-self.sensitivity[user] * load)
        p_leave = np.minimum(UNSUBSCRIBE_BASE + UNSUBSCRIBE_PER_LOAD * self.sensitivity[user] * load, UNSUBSCRIBE_MAX)
        leave = self.rng.random(len(user)) < p_leave
        self.unsubscribed[user[leave], channel[leave]] = True
        self.load[user] = load + 1.0
        self.load_day[user] = day_index
        return damp


def _fatigued_lift(lift: np.ndarray, damp: np.ndarray | float) -> np.ndarray:
    """A lift above 1 shrinks towards 1 by ``damp``; a lift below 1 (annoyance) does not wear off."""
    return np.where(lift > 1.0, 1.0 + (lift - 1.0) * damp, lift)


@dataclass(frozen=True)
class Sends:
    """One day's sends of the platform, as the shop's sender delivers them (closed loop)."""

    user: np.ndarray  # user index
    arm: np.ndarray  # 0 = none (a logged control), else 1 + catalogue index
    channel: np.ndarray  # index into CHANNELS
    send_hour: np.ndarray  # UTC hour of the day the message goes out
    propensity: np.ndarray
    policy_version: np.ndarray  # object array of strings


def _simulate_day(
    rng: np.random.Generator,
    day_index: int,
    day: date,
    users: _Users,
    items: _Items,
    catalogue: tuple[PromoSpec, ...],
    state: _OfferState,
    channels_pa: pa.Array,
    arm_ids_pa: pa.Array,
    sends: Sends | None = None,
    fatigue: _Fatigue | None = None,
) -> dict[str, pa.Table | None]:
    n_users = len(users.base_order_rate)
    day_us = _date_to_us(day)
    weekday_factor = WEEKDAY_FACTOR[day.weekday()]
    limited_categories = sorted({p.category for p in catalogue if p.category is not None})

    # ---- exposures: the randomised logging policy, sent by the night batch (00:00-01:00),
    # or, in a closed loop, what the platform published for the day (``sends``)
    if sends is None:
        policy = logging_policy([p.promo_id for p in catalogue])
        arm_probs = np.array(list(policy.values()))  # order: none, then catalogue order
        exposed = np.flatnonzero(rng.random(n_users) < DAILY_EXPOSURE_SHARE)
        arm = rng.choice(len(arm_probs), size=len(exposed), p=arm_probs)
        sent_us = day_us + rng.integers(0, 3600 * US_PER_S, len(exposed))
        fixed_channel = np.array([-1] + [CHANNELS.index(p.channel) if p.channel else -1 for p in catalogue])[arm]
        channel = np.where(fixed_channel >= 0, fixed_channel, rng.integers(0, len(CHANNELS), len(exposed)))
        propensity = arm_probs[arm]
        policy_version = np.full(len(exposed), LOGGING_POLICY_VERSION, dtype=object)
    else:
        exposed, arm, channel = sends.user, sends.arm, sends.channel
        sent_us = day_us + sends.send_hour * 3600 * US_PER_S + rng.integers(0, 3600 * US_PER_S, len(exposed))
        propensity, policy_version = sends.propensity, sends.policy_version
    order_by_time = np.argsort(sent_us, kind="stable")
    exposures = pa.Table.from_arrays(
        [
            users.ids.take(pa.array(exposed[order_by_time])),
            arm_ids_pa.take(pa.array(arm[order_by_time])),
            pa.array(sent_us[order_by_time], contract.UTC_TIMESTAMP),
            channels_pa.take(pa.array(channel[order_by_time])),
            pa.array(propensity[order_by_time]),
            pa.array(policy_version[order_by_time], pa.string()),
        ],
        schema=RAW_SCHEMAS["exposures"],
    )
    got_offer = arm > 0
    if fatigue is not None:  # an offer on a channel the user left is never seen
        got_offer &= ~fatigue.unsubscribed[exposed, channel]
    offered_users = exposed[got_offer]
    offered_promo = arm[got_offer] - 1
    state.promo[offered_users] = offered_promo
    state.sent_us[offered_users] = sent_us[got_offer]
    state.end_day[offered_users] = day_index + np.array([p.valid_days for p in catalogue])[offered_promo]
    if fatigue is not None:
        if state.damp is None:
            state.damp = np.ones(n_users)
        state.damp[offered_users] = fatigue.see(day_index, offered_users, channel[got_offer])

    # ---- today's order rate: live offers multiply it by the user x promo lift
    live = (state.promo >= 0) & (day_index < state.end_day)
    lift_today = np.ones(n_users)
    live_users = np.flatnonzero(live)
    lift_today[live_users] = users.lift[live_users, state.promo[live_users]]
    if state.damp is not None:
        lift_today[live_users] = _fatigued_lift(lift_today[live_users], state.damp[live_users])
    n_orders_per_user = rng.poisson(users.base_order_rate * weekday_factor * lift_today)
    order_user = np.repeat(np.arange(n_users), n_orders_per_user)
    n_orders = len(order_user)
    baskets = _draw_baskets(rng, order_user, users, items, limited_categories)
    order_second = (users.preferred_hour[order_user] * 3600 + rng.normal(0, 2.5 * 3600, n_orders)) % 86400
    # Leave room before the order for its session's cart events inside the same UTC day.
    order_second = np.clip(order_second, 900.0, 86400.0 - 1.0)
    order_us = day_us + (order_second * US_PER_S).astype(np.int64)

    # ---- offers on the orders: top-up towards thresholds, qualification, redemption
    gross = baskets.gross.copy()
    cogs = baskets.cogs.copy()
    discount = np.zeros(n_orders)
    redeemed_promo = np.full(n_orders, -1)
    extra_line_order: list[np.ndarray] = []
    extra_line_item: list[np.ndarray] = []
    order_promo = np.where(live[order_user], state.promo[order_user], -1)
    order_promo[order_us < state.sent_us[order_user]] = -1  # ordered before the offer arrived
    for p, promo in enumerate(catalogue):
        on_offer = np.flatnonzero(order_promo == p)
        if len(on_offer) == 0:
            continue
        topup = on_offer[
            _topup_applies(promo, gross[on_offer])
            & (rng.random(len(on_offer)) < users.topup_prob[order_user[on_offer]])
        ]
        if len(topup):
            added = _topup_items(rng, promo.min_spend - gross[topup], items)
            gross[topup] += items.price[added]
            cogs[topup] += items.unit_cost[added]
            extra_line_order.append(topup)
            extra_line_item.append(added)
        subtotal = baskets.subtotal_by_category[promo.category][on_offer] if promo.category else None
        offer_discount = _offer_discount(promo, gross[on_offer], subtotal, _shipping_fee(gross[on_offer]))
        redeems = (offer_discount > 0) & (rng.random(len(on_offer)) < users.redeem_prob[order_user[on_offer]])
        discount[on_offer[redeems]] = offer_discount[redeems]
        redeemed_promo[on_offer[redeems]] = p
    line_order = np.concatenate([baskets.line_order, *extra_line_order])
    line_item = np.concatenate([baskets.line_item, *extra_line_item])
    line_sort = np.argsort(line_order, kind="stable")
    line_order, line_item = line_order[line_sort], line_item[line_sort]
    n_items = np.bincount(line_order, minlength=n_orders)

    stamp = day.strftime("%Y%m%d")
    time_order = np.argsort(order_us, kind="stable")
    rank_of_order = np.empty(n_orders, dtype=np.int64)
    rank_of_order[time_order] = np.arange(n_orders)
    order_ids = _id_strings(f"o{stamp}-", np.arange(n_orders), 6)  # numbered in time order
    promo_ids_pa = arm_ids_pa.slice(1)
    orders = pa.Table.from_arrays(
        [
            order_ids,
            users.ids.take(pa.array(order_user[time_order])),
            pa.array(order_us[time_order], contract.UTC_TIMESTAMP),
            pa.array(np.round(gross[time_order], 2)),
            pa.array(np.round(discount[time_order], 2)),
            pa.array(np.round(cogs[time_order], 2)),
            pa.array(_shipping_fee(gross)[time_order]),
            promo_ids_pa.take(pa.array(redeemed_promo[time_order], mask=redeemed_promo[time_order] < 0)),
            pa.array(n_items[time_order].astype(np.int32)),
        ],
        schema=RAW_SCHEMAS["orders"],
    )

    # ---- browsing sessions (offers draw people back to the shop a little too)
    n_sessions_per_user = rng.poisson(users.session_rate * weekday_factor * np.sqrt(lift_today))
    session_user = np.repeat(np.arange(n_users), n_sessions_per_user)
    n_sessions = len(session_user)
    session_start = (users.preferred_hour[session_user] * 3600 + rng.normal(0, 2.0 * 3600, n_sessions)) % 86400
    session_start = np.minimum(session_start, 86400.0 - 3600.0)  # sessions (< 1 h) end inside the day

    n_views = np.minimum(1 + rng.poisson(2.0, n_sessions), 30)
    view_session = np.repeat(np.arange(n_sessions), n_views)
    view_rank = np.arange(len(view_session)) - np.repeat(np.cumsum(n_views) - n_views, n_views)
    view_user = session_user[view_session]
    view_item = _pick_items(rng, view_user, users, items, preferred_share=0.7, group=view_session)
    view_second = session_start[view_session] + 20.0 + 45.0 * view_rank + rng.uniform(0, 30, len(view_session))
    clicked = rng.random(len(view_session)) < 0.35
    carted = rng.random(len(view_session)) < 0.03 + 0.25 * users.hesitancy[view_user]

    n_searches = rng.poisson(0.15 + 0.5 * users.price_sensitivity[session_user])
    search_session = np.repeat(np.arange(n_sessions), n_searches)
    search_user = session_user[search_session]
    deal_query = rng.random(len(search_session)) < 0.05 + 0.6 * users.deal_proneness[search_user]
    word = np.where(
        deal_query,
        len(SEARCH_PLAIN_WORDS) + rng.integers(0, len(SEARCH_DEAL_WORDS), len(search_session)),
        rng.integers(0, len(SEARCH_PLAIN_WORDS), len(search_session)),
    )
    search_category = np.where(
        rng.random(len(search_session)) < 0.7,
        users.preferred_category[search_user],
        rng.integers(0, len(CATEGORY_NAMES), len(search_session)),
    )
    search_second = session_start[search_session] + rng.uniform(1, 15, len(search_session))

    # ---- the order sessions: app_open, add_to_cart per line, purchase per line
    line_user = order_user[line_order]
    line_rank = np.arange(len(line_order)) - np.repeat(np.cumsum(n_items) - n_items, n_items)
    order_session_start = order_second - 60.0 - 40.0 * n_items
    cart_second = order_session_start[line_order] + 30.0 + 40.0 * line_rank

    # Event rows by kind; sessions numbered: browsing 0..n_sessions-1, then one per order.
    EV = ("view", "click", "add_to_cart", "purchase", "search", "app_open")
    parts = [  # (user, item or -1, kind, second-of-day, session, query or -1)
        (view_user, view_item, 0, view_second, view_session, None),
        (
            view_user[clicked],
            view_item[clicked],
            1,
            view_second[clicked] + rng.uniform(2, 15, clicked.sum()),
            view_session[clicked],
            None,
        ),
        (
            view_user[carted],
            view_item[carted],
            2,
            view_second[carted] + rng.uniform(16, 40, carted.sum()),
            view_session[carted],
            None,
        ),
        (search_user, None, 4, search_second, search_session, word * len(CATEGORY_NAMES) + search_category),
        (session_user, None, 5, session_start, np.arange(n_sessions), None),
        (line_user, line_item, 2, cart_second, n_sessions + line_order, None),
        (line_user, line_item, 3, order_second[line_order], n_sessions + line_order, None),
        (order_user, None, 5, order_session_start, n_sessions + np.arange(n_orders), None),
    ]
    ev_user = np.concatenate([p[0] for p in parts])
    ev_item = np.concatenate([p[1] if p[1] is not None else np.full(len(p[0]), -1) for p in parts])
    ev_kind = np.concatenate([np.full(len(p[0]), p[2]) for p in parts])
    ev_second = np.concatenate([p[3] for p in parts])
    ev_session = np.concatenate([p[4] for p in parts])
    ev_query = np.concatenate([p[5] if p[5] is not None else np.full(len(p[0]), -1) for p in parts])
    ev_us = day_us + np.minimum((ev_second * US_PER_S).astype(np.int64), US_PER_DAY - 1)
    # Purchases share their order's timestamp exactly (order_ts == purchase event_ts).
    purchase = ev_kind == 3
    ev_us[purchase] = order_us[line_order]
    by_time = np.argsort(ev_us, kind="stable")
    n_events = len(by_time)
    events = pa.Table.from_arrays(
        [
            _id_strings(f"e{stamp}-", np.arange(n_events), 8),
            users.ids.take(pa.array(ev_user[by_time])),
            items.ids.take(pa.array(ev_item[by_time], mask=ev_item[by_time] < 0)),
            pa.array(list(EV)).take(pa.array(ev_kind[by_time])),
            pa.array(ev_us[by_time], contract.UTC_TIMESTAMP),
            _id_strings(f"s{stamp}-", ev_session[by_time], 7),
            pa.array(list(SEARCH_VOCABULARY)).take(pa.array(ev_query[by_time], mask=ev_query[by_time] < 0)),
        ],
        schema=RAW_SCHEMAS["events"],
    )
    # Redelivered events (at-least-once delivery upstream): same rows, another file.
    duplicated = np.flatnonzero(rng.random(n_events) < DUPLICATE_EVENT_SHARE)
    duplicates = events.take(pa.array(duplicated)) if len(duplicated) else None
    return {"events": events, "events_duplicates": duplicates, "orders": orders, "exposures": exposures}


# =========================================================================== ground truth
def _ground_truth(
    seed: int,
    users: _Users,
    items: _Items,
    catalogue: tuple[PromoSpec, ...],
    run_date: date,
    orders_per_user: int = 96,
    chunk_users: int = 20_000,
    live_promo: np.ndarray | None = None,
    live_days_left: np.ndarray | None = None,
    live_damp: np.ndarray | None = None,
    damp: np.ndarray | None = None,
    unsubscribed: np.ndarray | None = None,
) -> pa.Table:
    """Expected outcome of every arm for an offer sent at ``run_date`` 00:00 UTC.

    Semi-analytic: orders in a window are Poisson with mean base_rate x weekday factors x
    lift (exact); redemption and top-up are Bernoulli with known probabilities (exact
    expectations); only the basket contents are averaged over ``orders_per_user`` Monte
    Carlo baskets per user (fixed seed, common baskets for all arms so arm differences
    carry little noise).

    ``live_promo`` / ``live_days_left`` (closed loop): the catalogue index of the offer a user
    still holds at ``run_date`` (-1: none) and for how many more days it counts. Sending
    nothing leaves it running; sending an offer replaces it (the simulator keeps one live
    offer per user), so an arm's incremental margin runs until both have ended.

    Fatigue (:class:`_Fatigue`): ``live_damp`` is the live offer's factor on its lift above 1,
    ``damp`` the factor a new offer would get tonight; ``unsubscribed`` (users x CHANNELS) the
    channels each user has left. An arm that cannot reach the user (its fixed channel left,
    or every channel left) is worth exactly what sending nothing is: the offer is never seen.
    An arm of no fixed channel is valued as sent on a channel the user still reads.
    """
    rng = np.random.default_rng([seed, 20_261_001])  # own stream: truth never shifts the raw data
    n_users = len(users.base_order_rate)
    limited_categories = sorted({p.category for p in catalogue if p.category is not None})
    arms = [NO_OFFER_ARM] + [p.promo_id for p in catalogue]
    n_arms = len(arms)
    none_window = max(p.valid_days for p in catalogue)
    if live_promo is None:
        live_promo, live_days_left = np.full(n_users, -1), np.zeros(n_users, np.int64)
    live_days_left = np.where(live_promo >= 0, np.maximum(live_days_left, 0), 0)
    horizon = max(none_window, int(live_days_left.max(initial=0)))
    day_factor = np.array([WEEKDAY_FACTOR[(run_date + timedelta(days=k)).weekday()] for k in range(horizon)])
    day = np.arange(horizon)

    p_order = np.zeros((n_users, n_arms))
    expected_margin = np.zeros((n_users, n_arms))
    expected_discount = np.zeros((n_users, n_arms))
    expected_incremental = np.zeros((n_users, n_arms))
    window = np.array([none_window] + [p.valid_days for p in catalogue])
    lift = np.concatenate([np.ones((n_users, 1)), users.lift], axis=1)
    live_lift = lift.copy()  # the live offer's lift, with the fatigue it was seen under
    if live_damp is not None:
        live_lift[:, 1:] = _fatigued_lift(users.lift, live_damp[:, None])
    if damp is not None:
        lift[:, 1:] = _fatigued_lift(users.lift, damp[:, None])
    reachable = np.ones((n_users, n_arms), bool)
    if unsubscribed is not None:
        for p, promo in enumerate(catalogue, start=1):
            if promo.channel is not None:
                reachable[:, p] = ~unsubscribed[:, CHANNELS.index(promo.channel)]
            else:
                reachable[:, p] = ~unsubscribed.all(axis=1)
    lift[~reachable] = 1.0

    for lo in range(0, n_users, chunk_users):
        chunk = np.arange(lo, min(lo + chunk_users, n_users))
        sample_user = np.repeat(chunk, orders_per_user)
        baskets = _draw_baskets(rng, sample_user, users, items, limited_categories)
        gross, cogs = baskets.gross, baskets.cogs
        base_margin = (gross - cogs).reshape(len(chunk), orders_per_user).mean(axis=1)
        redeem = users.redeem_prob[sample_user]
        # Margin and discount per order while each promo is live (arm order; 'none' = no offer).
        margin_per_order = np.zeros((len(chunk), n_arms))
        discount_per_order = np.zeros((len(chunk), n_arms))
        margin_per_order[:, 0] = base_margin
        for p, promo in enumerate(catalogue, start=1):
            # Top-up baskets exist only just below a threshold; elsewhere they equal the plain one.
            near_threshold = np.flatnonzero(_topup_applies(promo, gross))
            topup_item = _topup_items(rng, promo.min_spend - gross[near_threshold], items)
            topup_share = np.zeros(len(gross))
            topup_share[near_threshold] = users.topup_prob[sample_user[near_threshold]]
            gross_topped, cogs_topped = gross.copy(), cogs.copy()
            gross_topped[near_threshold] += items.price[topup_item]
            cogs_topped[near_threshold] += items.unit_cost[topup_item]
            subtotal = baskets.subtotal_by_category[promo.category] if promo.category else None
            discount_plain = _offer_discount(promo, gross, subtotal, _shipping_fee(gross))
            discount_topped = _offer_discount(promo, gross_topped, subtotal, _shipping_fee(gross_topped))
            margin = (1 - topup_share) * (gross - cogs - redeem * discount_plain) + topup_share * (
                gross_topped - cogs_topped - redeem * discount_topped
            )
            discount = redeem * ((1 - topup_share) * discount_plain + topup_share * discount_topped)
            margin_per_order[:, p] = margin.reshape(len(chunk), orders_per_user).mean(axis=1)
            discount_per_order[:, p] = discount.reshape(len(chunk), orders_per_user).mean(axis=1)

        rows = np.arange(len(chunk))
        rate = users.base_order_rate[chunk][:, None] * day_factor[None, :]  # plain orders per day
        live = live_promo[chunk]
        live_arm = np.where(live >= 0, live + 1, 0)
        live_on = day[None, :] < live_days_left[chunk][:, None]  # (users, days) the live offer counts
        # Sending nothing: the live offer runs out, then plain days.
        none_orders = rate * np.where(live_on, live_lift[chunk, live_arm][:, None], 1.0)
        none_margin = none_orders * np.where(live_on, margin_per_order[rows, live_arm][:, None], base_margin[:, None])
        p_order[chunk, 0] = 1.0 - np.exp(-none_orders[:, :none_window].sum(axis=1))
        expected_margin[chunk, 0] = none_margin[:, :none_window].sum(axis=1)
        for p, promo in enumerate(catalogue, start=1):
            w = promo.valid_days
            orders_window_arm = rate[:, :w].sum(axis=1) * lift[chunk, p]
            p_order[chunk, p] = 1.0 - np.exp(-orders_window_arm)
            expected_margin[chunk, p] = orders_window_arm * margin_per_order[:, p]
            expected_discount[chunk, p] = orders_window_arm * discount_per_order[:, p]
            # Against sending nothing, until both the new offer and the one it replaces have ended.
            after_window = (rate[:, w:] * base_margin[:, None]).sum(axis=1) - none_margin[:, w:].sum(axis=1)
            expected_incremental[chunk, p] = expected_margin[chunk, p] - none_margin[:, :w].sum(axis=1) + after_window
            unseen = ~reachable[chunk, p]  # never seen: the user's night is the 'none' one
            p_order[chunk[unseen], p] = p_order[chunk[unseen], 0]
            expected_margin[chunk[unseen], p] = expected_margin[chunk[unseen], 0]
            expected_discount[chunk[unseen], p] = 0.0
            expected_incremental[chunk[unseen], p] = 0.0

    user_index = np.repeat(np.arange(n_users), n_arms)
    arm_index = np.tile(np.arange(n_arms), n_users)
    return pa.table(
        {
            "user_id": users.ids.take(pa.array(user_index)),
            "promo_id": pa.array(arms).take(pa.array(arm_index)),
            "window_days": pa.array(window[arm_index].astype(np.int32)),
            "order_rate_lift": pa.array(lift.ravel()),
            "p_order": pa.array(p_order.ravel()),
            "expected_margin": pa.array(expected_margin.ravel()),
            "expected_discount_cost": pa.array(expected_discount.ravel()),
            "expected_incremental_margin": pa.array(expected_incremental.ravel()),
        }
    )


def _latent_table(users: _Users) -> pa.Table:
    return pa.table(
        {
            "user_id": users.ids,
            "segment": pa.array(np.array(SEGMENTS)[users.segment]),
            "base_daily_order_rate": pa.array(users.base_order_rate),
            "session_rate": pa.array(users.session_rate),
            "extra_items_mean": pa.array(users.extra_items_mean),
            "preferred_category": pa.array(np.array(CATEGORY_NAMES)[users.preferred_category]),
            "preferred_hour_utc": pa.array(users.preferred_hour.astype(np.int32)),
            "price_sensitivity": pa.array(users.price_sensitivity),
            "deal_proneness": pa.array(users.deal_proneness),
            "hesitancy": pa.array(users.hesitancy),
            "redeem_prob": pa.array(users.redeem_prob),
            "topup_prob": pa.array(users.topup_prob),
            "peak_lift": pa.array(users.base_lift),
        }
    )


# =========================================================================== writing
def _write(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="zstd")


def _prepare_staging(target: Path, marker: str) -> Path:
    """A fresh sibling folder to write into; refuses to later replace a folder that is
    not ours (the swap deletes the old content)."""
    target = target.resolve()
    if target.exists() and any(target.iterdir()) and not (target / marker).exists():
        raise FileExistsError(
            f"{target} is not empty and has no {marker}: refusing to replace a folder the demo "
            "generator did not write; point --raw-dir/--truth-dir at an empty or demo folder"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{target.name}.staging-", dir=target.parent))


def _swap_into_place(staging: Path, target: Path) -> None:
    target = target.resolve()
    old = None
    if target.exists():
        old = target.parent / f".{target.name}.old-{os.getpid()}"
        os.replace(target, old)
    os.replace(staging, target)
    if old is not None:
        shutil.rmtree(old)


def _write_day(tables: dict[str, pa.Table | None], raw: Path, day: date, counts: dict[str, int]) -> None:
    """One simulated day's partitions under ``raw``; adds its row counts to ``counts``."""
    partition = f"dt={day.isoformat()}"
    _write(tables["events"], raw / "events" / partition / "part-0.parquet")
    if tables["events_duplicates"] is not None:
        _write(tables["events_duplicates"], raw / "events" / partition / "part-1.parquet")
        counts["duplicates"] += tables["events_duplicates"].num_rows
    _write(tables["orders"], raw / "orders" / partition / "part-0.parquet")
    _write(tables["exposures"], raw / "exposures" / partition / "part-0.parquet")
    counts["events"] += tables["events"].num_rows
    counts["orders"] += tables["orders"].num_rows
    counts["redeemed"] += tables["orders"].num_rows - tables["orders"].column("promo_id").null_count
    counts["exposures"] += tables["exposures"].num_rows


# =========================================================================== closed loop
SHOP_STATE_FILE = "shop_state.pkl"  # beside the truth: the platform never reads it
UNSUBSCRIBED_FILE = "user_channel_unsubscribed.parquet"  # beside the truth: (user_id, channel) left


@dataclass
class _Shop:
    """Everything :func:`advance` needs to run the shop on from where it stopped."""

    seed: int
    start_date: date
    days_simulated: int  # the next day to simulate is start_date + days_simulated
    users: _Users
    items: _Items
    offers: _OfferState
    rng: np.random.Generator
    channels_pa: pa.Array
    arm_ids_pa: pa.Array
    fatigue: _Fatigue | None = None


def _live_offers(offers: _OfferState, day_index: int, fatigue: _Fatigue | None = None) -> dict[str, np.ndarray]:
    """The truth's view of day ``day_index``: the offer each user still holds (-1: none), its days
    left and, with fatigue, its fatigue factor, tonight's factor and the channels left."""
    live = (offers.promo >= 0) & (offers.end_day > day_index)
    state = {
        "live_promo": np.where(live, offers.promo, -1),
        "live_days_left": np.where(live, offers.end_day - day_index, 0),
    }
    if fatigue is not None:
        state["live_damp"] = offers.damp if offers.damp is not None else np.ones(len(offers.promo))
        state["damp"] = fatigue.damp_on(day_index)
        state["unsubscribed"] = fatigue.unsubscribed
    return state


def _unsubscribed_table(users: _Users, fatigue: _Fatigue | None) -> pa.Table:
    """(user_id, channel) for every channel a user has left: their sends there are never seen."""
    user, channel = np.nonzero(fatigue.unsubscribed) if fatigue is not None else (np.zeros(0, int), np.zeros(0, int))
    return pa.table(
        {
            "user_id": users.ids.take(pa.array(user, pa.int64())),
            "channel": pa.array(np.array(CHANNELS)[channel], pa.string()),
        }
    )


def _save_shop(shop: _Shop, path: Path) -> None:
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as f:
        pickle.dump(shop, f, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(partial, path)


def _sends_of(table: pa.Table, shop: _Shop) -> Sends:
    """The platform's sends as the simulator's indices; unknown users, promos or channels are errors."""
    user = pc.index_in(table["user_id"], value_set=shop.users.ids).to_numpy(zero_copy_only=False)
    arm = pc.index_in(table["promo_id"], value_set=shop.arm_ids_pa).to_numpy(zero_copy_only=False)
    channel_column = pc.fill_null(table["channel"], CHANNELS[0])  # a logged control has no channel
    channel = pc.index_in(channel_column, value_set=pa.array(list(CHANNELS))).to_numpy(zero_copy_only=False)
    for name, index in (("user_id", user), ("promo_id", arm), ("channel", channel)):
        if np.isnan(np.asarray(index, dtype=float)).any():
            raise ValueError(f"sends: {name} values the shop does not know")
    hour = pc.fill_null(table["send_hour"], 0).to_numpy(zero_copy_only=False).astype(np.int64)
    if ((hour < 0) | (hour > 23)).any():
        raise ValueError("sends: send_hour outside 0-23")
    return Sends(
        user=np.asarray(user, np.int64),
        arm=np.asarray(arm, np.int64),
        channel=np.asarray(channel, np.int64),
        send_hour=hour,
        propensity=table["propensity"].to_numpy(zero_copy_only=False).astype(float),
        policy_version=np.asarray(table["policy_version"].to_pylist(), dtype=object),
    )


def advance(raw_dir: Path, truth_dir: Path, sends: pa.Table) -> dict:
    """Run the shop kept by ``generate(keep_state=True)`` one more day, answering ``sends``.

    ``sends`` (columns user_id, promo_id, channel, send_hour, propensity, policy_version) is
    what the shop's sender delivered that day: the platform's published offers and holdout
    controls. They replace the randomised logging policy (nothing else sends any more); users
    respond to them by their hidden lifts exactly as to the history's offers; events, orders
    and the sends as exposures land in the day's partitions of ``raw_dir``. The truth is then
    rewritten for the next run date, with the offers still live then. Returns what landed.
    """
    raw_dir, truth_dir = Path(raw_dir), Path(truth_dir)
    with open(truth_dir / SHOP_STATE_FILE, "rb") as f:
        shop: _Shop = pickle.load(f)
    day_index = shop.days_simulated
    day = shop.start_date + timedelta(days=day_index)
    run_date = day + timedelta(days=1)
    if any((raw_dir / table / f"dt={day.isoformat()}").exists() for table in DAILY_TABLES):
        raise FileExistsError(f"{raw_dir}: day {day} has landed already; the shop runs forward only")
    if shop.items.choice is not None:
        shop.items.choice.recording = True
    tables = _simulate_day(
        shop.rng,
        day_index,
        day,
        shop.users,
        shop.items,
        CATALOGUE,
        shop.offers,
        shop.channels_pa,
        shop.arm_ids_pa,
        _sends_of(sends, shop),
        shop.fatigue,
    )
    counts = {"events": 0, "duplicates": 0, "orders": 0, "redeemed": 0, "exposures": 0}
    staging = Path(tempfile.mkdtemp(prefix=f".day-{day.isoformat()}-", dir=raw_dir))
    try:
        _write_day(tables, staging, day, counts)
        for table in DAILY_TABLES:  # each partition appears whole or not at all
            (raw_dir / table).mkdir(exist_ok=True)
            os.replace(staging / table / f"dt={day.isoformat()}", raw_dir / table / f"dt={day.isoformat()}")
    finally:
        shutil.rmtree(staging, ignore_errors=True)

    if shop.items.choice is not None:
        shop.items.choice.recording = False
    live = _live_offers(shop.offers, day_index + 1, shop.fatigue)
    truth = _ground_truth(shop.seed, shop.users, shop.items, CATALOGUE, run_date, **live)
    for name, table in (
        ("user_arm_truth.parquet", truth),
        (UNSUBSCRIBED_FILE, _unsubscribed_table(shop.users, shop.fatigue)),
    ):
        _write(table, truth_dir / f"{name}.partial")
        os.replace(truth_dir / f"{name}.partial", truth_dir / name)
    shop.days_simulated += 1
    _save_shop(shop, truth_dir / SHOP_STATE_FILE)
    manifest_path = truth_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["run_date"] = run_date.isoformat()
    manifest.setdefault("closed_loop_days", []).append(day.isoformat())
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return {
        "day": day.isoformat(),
        "run_date": run_date.isoformat(),
        "sends": int(pc.sum(pc.not_equal(tables["exposures"]["promo_id"], NO_OFFER_ARM)).as_py() or 0),
        "controls": int(pc.sum(pc.equal(tables["exposures"]["promo_id"], NO_OFFER_ARM)).as_py() or 0),
        "live_offers_at_run_date": int((live["live_promo"] >= 0).sum()),
        "unsubscribed_users": int(shop.fatigue.unsubscribed.any(axis=1).sum()) if shop.fatigue is not None else 0,
        **{k: v for k, v in counts.items()},
    }


def generate(
    raw_dir: Path,
    truth_dir: Path,
    *,
    n_users: int = 5000,
    n_days: int = 30,
    start_date: date = date(2026, 10, 1),
    seed: int = 7,
    n_items: int = 400,
    response_shape: str = "latent",
    item_shape: str = "category",
    keep_state: bool = False,
    fatigue: bool = True,
) -> GenerationSummary:
    """Write the demo shop's raw landing zone and ground truth, replacing both folders.

    Same arguments => identical table contents. Decisions are supported from
    ``run_date = start_date + n_days`` (the first day with no raw data). ``keep_state``
    also pickles the shop (users, items, live offers, random stream) beside the truth, so
    that :func:`advance` can run it on, day by day, answering the platform's own sends.
    ``fatigue=False`` turns offer fatigue (:class:`_Fatigue`) off; no other draw changes.
    """
    if n_users < 1 or n_days < 1 or n_items < len(CATEGORY_NAMES):
        raise ValueError(
            f"need n_users >= 1, n_days >= 1, n_items >= {len(CATEGORY_NAMES)}; got {n_users}, {n_days}, {n_items}"
        )
    began = time.perf_counter()
    raw_dir, truth_dir = Path(raw_dir), Path(truth_dir)
    run_date = start_date + timedelta(days=n_days)
    catalogue = CATALOGUE
    rng = np.random.default_rng(seed)

    items, items_table = _build_items(rng, n_items)
    if response_shape not in RESPONSE_SHAPES:
        raise ValueError(f"response_shape {response_shape!r}: one of {RESPONSE_SHAPES}")
    users, users_table = _build_users(
        rng, n_users, start_date, catalogue, response_shape, np.random.default_rng([seed, 20_261_123])
    )
    items.choice = _item_choice(item_shape, seed, users, items)
    promotions_table = _promotions_table(catalogue, start_date, run_date)
    channels_pa = pa.array(list(CHANNELS))
    arm_ids_pa = pa.array([NO_OFFER_ARM] + [p.promo_id for p in catalogue])

    raw_staging = _prepare_staging(raw_dir, "users/users.parquet")
    truth_staging = _prepare_staging(truth_dir, "manifest.json")
    try:
        _write(users_table, raw_staging / "users" / "users.parquet")
        _write(items_table, raw_staging / "items" / "items.parquet")
        _write(promotions_table, raw_staging / "promotions" / "promotions.parquet")

        state = _OfferState(
            promo=np.full(n_users, -1), sent_us=np.zeros(n_users, np.int64), end_day=np.zeros(n_users, np.int64)
        )
        shop_fatigue = _Fatigue.draw(seed, users) if fatigue else None
        counts = {"events": 0, "duplicates": 0, "orders": 0, "redeemed": 0, "exposures": 0}
        for day_index in range(n_days):
            day = start_date + timedelta(days=day_index)
            tables = _simulate_day(
                rng, day_index, day, users, items, catalogue, state, channels_pa, arm_ids_pa, fatigue=shop_fatigue
            )
            _write_day(tables, raw_staging, day, counts)

        if items.choice is not None:
            items.choice.recording = False  # the truth's Monte Carlo baskets are not purchases
        _write(_item_preference_table(users, items), truth_staging / "user_item_preference.parquet")
        truth = _ground_truth(seed, users, items, catalogue, run_date, **_live_offers(state, n_days, shop_fatigue))
        _write(truth, truth_staging / "user_arm_truth.parquet")
        _write(_unsubscribed_table(users, shop_fatigue), truth_staging / UNSUBSCRIBED_FILE)
        _write(_latent_table(users), truth_staging / "user_latent.parquet")
        segment_counts = np.bincount(users.segment, minlength=len(SEGMENTS))
        manifest = {
            "generator_version": GENERATOR_VERSION,
            "seed": seed,
            "response_shape": response_shape,
            "item_shape": item_shape,
            "n_users": n_users,
            "n_items": n_items,
            "n_promotions": len(catalogue),
            "n_days": n_days,
            "start_date": start_date.isoformat(),
            "run_date": run_date.isoformat(),
            "logging_policy": {
                "version": LOGGING_POLICY_VERSION,
                "daily_exposure_share": DAILY_EXPOSURE_SHARE,
                "arm_probabilities": logging_policy([p.promo_id for p in catalogue]),
            },
            "counts": {
                "events": counts["events"],
                "duplicate_events": counts["duplicates"],
                "orders": counts["orders"],
                "redeemed_orders": counts["redeemed"],
                "exposures": counts["exposures"],
            },
            "segments": {name: int(c) for name, c in zip(SEGMENTS, segment_counts)},
            "fatigue": (
                {
                    "half_life_days": FATIGUE_HALF_LIFE_DAYS,
                    "unsubscribe_base": UNSUBSCRIBE_BASE,
                    "unsubscribe_per_load": UNSUBSCRIBE_PER_LOAD,
                    "users_unsubscribed_by_run_date": int(shop_fatigue.unsubscribed.any(axis=1).sum()),
                    "mean_damp_at_run_date": float(shop_fatigue.damp_on(n_days).mean()),
                }
                if shop_fatigue is not None
                else None
            ),
            "truth_method": (
                "semi-analytic: for an offer sent at run_date 00:00 UTC, orders in [run_date, run_date+window_days) "
                "are Poisson(base_daily_order_rate x weekday factors x order_rate_lift) (exact); redemption and "
                "threshold top-up are Bernoulli with known probabilities (exact); basket contents averaged over 96 "
                "Monte Carlo baskets per user with a fixed seed, shared by all arms. window_days is the promo's "
                "valid_days ('none' row: the longest valid_days); expected_incremental_margin is vs 'none' over "
                "the promo's own window. A user's offer still live at run_date (closed loop) keeps running under 'none' "
                "and is replaced by any other arm; the incremental margin runs until both have ended. With fatigue, "
                "lifts above 1 shrink by exp(-sensitivity x offer load) and an arm whose channel the user has left is "
                "worth exactly 'none' (user_channel_unsubscribed.parquet)."
            ),
        }
        (truth_staging / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        if keep_state:
            shop = _Shop(seed, start_date, n_days, users, items, state, rng, channels_pa, arm_ids_pa, shop_fatigue)
            _save_shop(shop, truth_staging / SHOP_STATE_FILE)
        _swap_into_place(raw_staging, raw_dir)
        _swap_into_place(truth_staging, truth_dir)
    except BaseException:
        shutil.rmtree(raw_staging, ignore_errors=True)
        shutil.rmtree(truth_staging, ignore_errors=True)
        raise

    return GenerationSummary(
        raw_dir=str(raw_dir),
        truth_dir=str(truth_dir),
        seed=seed,
        n_users=n_users,
        n_items=n_items,
        n_promotions=len(catalogue),
        n_days=n_days,
        start_date=start_date,
        run_date=run_date,
        n_events=counts["events"],
        n_duplicate_events=counts["duplicates"],
        n_orders=counts["orders"],
        n_redeemed_orders=counts["redeemed"],
        n_exposures=counts["exposures"],
        n_truth_rows=truth.num_rows,
        seconds=time.perf_counter() - began,
    )


# =========================================================================== CLI
def main(argv: list[str] | None = None) -> int:
    from promoflow.settings import Settings

    settings = Settings.from_env()
    parser = argparse.ArgumentParser(prog="python -m demo.simulator", description=__doc__.split("\n\n")[0])
    parser.add_argument("--raw-dir", type=Path, default=Path(settings.raw_uri), help="landing zone to (re)write")
    parser.add_argument(
        "--truth-dir",
        type=Path,
        default=Path(settings.data_dir) / "demo" / "truth",
        help="ground truth folder to (re)write",
    )
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--items", type=int, default=400)
    parser.add_argument("--start-date", type=date.fromisoformat, default=date(2026, 10, 1), help="YYYY-MM-DD")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--response-shape",
        choices=RESPONSE_SHAPES,
        default="latent",
        help="who responds to offers (see RESPONSE_SHAPES)",
    )
    parser.add_argument(
        "--item-shape", choices=ITEM_SHAPES, default="category", help="how users choose items (see ITEM_SHAPES)"
    )
    parser.add_argument(
        "--keep-state",
        action="store_true",
        help=f"also write {SHOP_STATE_FILE} beside the truth, so that demo.simulator.advance can run the shop on",
    )
    parser.add_argument(
        "--no-fatigue",
        action="store_true",
        help="a shop without offer fatigue: repeat offers move users as the first did, nobody unsubscribes",
    )
    args = parser.parse_args(argv)
    if str(args.raw_dir).startswith("s3://"):
        parser.error("--raw-dir must be a local folder; upload the generated folder to S3 afterwards")
    summary = generate(
        args.raw_dir,
        args.truth_dir,
        n_users=args.users,
        n_days=args.days,
        start_date=args.start_date,
        seed=args.seed,
        n_items=args.items,
        response_shape=args.response_shape,
        item_shape=args.item_shape,
        keep_state=args.keep_state,
        fatigue=not args.no_fatigue,
    )
    print(summary.one_line())
    return 0


if __name__ == "__main__":
    from demo import simulator  # run as the module itself, so that a kept shop unpickles under demo.simulator

    sys.exit(simulator.main())
