"""Delivery of a chosen offer: message text, channel and reason codes.

Messages are English and Simplified Chinese templates per ``promo_type`` of the promotions catalogue (see
/work/shared/contracts/DATA_CONTRACT.md): they state the value, the spend threshold and the
category when the offer has them, and the expiry date.

:func:`delivery_columns` gives a whole night's delivery columns (channel, message, featured
items, reason, send hour) from arrays, the same values the per-user functions give, row for
row: messages are rendered once per distinct (promo, language, featured items), channels are
computed over arrays, reasons by :func:`reason_codes` per offer.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from promoflow.contract import CHANNELS, PROMO_TYPES

PUSH_DEVICES = ("ios", "android")
MAX_FEATURED_ITEMS_IN_MESSAGE = 3
LANGUAGES = ("en", "zh")


def _present(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, float) and math.isnan(value):
        return False
    return not (isinstance(value, str) and value.strip() == "")


def _number(value: Any, default: float = 0.0) -> float:
    return float(value) if _present(value) else default


def _money(amount: float, currency: str) -> str:
    text = f"{amount:,.0f}" if float(amount).is_integer() else f"{amount:,.2f}"
    return f"{currency}{text}"


def _percent(value: float) -> str:
    return f"{value:g}%"


def render_message(
    promo: Mapping[str, Any],
    expiry_date: dt.date,
    featured_item_names: Sequence[str] | None = None,
    *,
    currency: str = "$",
    language: str = "en",
) -> str:
    """Offer text for one user; ``promo`` is a row of the promotions catalogue.

    ``language`` is ``"en"`` or ``"zh"`` (Simplified Chinese templates, same content)."""
    if language not in LANGUAGES:
        raise ValueError(f"language {language!r}: no templates; known: {LANGUAGES}")
    promo_type = promo.get("promo_type")
    promo_id = promo.get("promo_id", "?")
    if promo_type not in PROMO_TYPES:
        raise ValueError(f"promo {promo_id!r}: promo_type {promo_type!r} has no message template; known: {PROMO_TYPES}")
    value = _number(promo.get("value"))
    min_spend = _number(promo.get("min_spend"))
    max_discount = _number(promo.get("max_discount"), default=math.nan)
    category = str(promo["category"]) if _present(promo.get("category")) else None

    if language == "zh":
        return _render_zh(
            promo_type, value, min_spend, max_discount, category, expiry_date, featured_item_names, currency
        )
    scope = f"{category} items" if category else "everything"
    on_orders = f" on {category} orders" if category else " on your next order"
    threshold = f" when you spend {_money(min_spend, currency)} or more" if min_spend > 0 else ""
    cap = f" (up to {_money(max_discount, currency)} off)" if math.isfinite(max_discount) and max_discount > 0 else ""

    if promo_type == "percent_off":
        offer = f"Take {_percent(value)} off {scope}{threshold}{cap}."
    elif promo_type == "amount_off":
        offer = f"Get {_money(value, currency)} off{on_orders}{threshold}."
    elif promo_type == "spend_threshold":
        spend = f"Spend {_money(min_spend, currency)}" + (f" on {category} items" if category else "")
        offer = f"{spend} and save {_money(value, currency)}{cap}."
    elif promo_type == "free_shipping":
        offer = f"Free shipping{on_orders}{threshold}."
    else:  # gift
        offer = f"A free gift worth {_money(value, currency)} with your next {category + ' ' if category else ''}order{threshold}."

    parts = [offer, f"Valid until {expiry_date:%d %B %Y}."]
    names = [str(n) for n in (featured_item_names or []) if _present(n)][:MAX_FEATURED_ITEMS_IN_MESSAGE]
    if names:
        parts.append(f"Picked for you: {', '.join(names)}.")
    return " ".join(parts)


def _render_zh(promo_type, value, min_spend, max_discount, category, expiry, featured_item_names, currency) -> str:
    scope = f"{category}类商品" if category else "全场商品"
    on_orders = f"{category}类订单" if category else "下一笔订单"
    threshold = f"（满{_money(min_spend, currency)}可用）" if min_spend > 0 else ""
    cap = f"（最高减{_money(max_discount, currency)}）" if math.isfinite(max_discount) and max_discount > 0 else ""
    if promo_type == "percent_off":
        offer = f"{scope}立享{_percent(value)}优惠{threshold}{cap}。"
    elif promo_type == "amount_off":
        offer = f"{on_orders}立减{_money(value, currency)}{threshold}。"
    elif promo_type == "spend_threshold":
        offer = f"{scope}满{_money(min_spend, currency)}减{_money(value, currency)}{cap}。"
    elif promo_type == "free_shipping":
        offer = f"{on_orders}免运费{threshold}。"
    else:  # gift
        offer = f"{on_orders}{threshold}即送价值{_money(value, currency)}的礼品。"
    parts = [offer, f"有效期至{expiry.year}年{expiry.month}月{expiry.day}日。"]
    names = [str(n) for n in (featured_item_names or []) if _present(n)][:MAX_FEATURED_ITEMS_IN_MESSAGE]
    if names:
        parts.append(f"为您精选：{'、'.join(names)}。")
    return "".join(parts)


def expiry_date(sent_date: dt.date, valid_days: int) -> dt.date:
    """Last day the offer is redeemable: the window is [sent, sent + valid_days)."""
    return sent_date + dt.timedelta(days=max(int(valid_days), 1) - 1)


def _fixed_channel(promo_channel: Any) -> str | None:
    """The promo's fixed channel (normalised), None when it has none; an unknown channel is an error."""
    if not _present(promo_channel):
        return None
    channel = str(promo_channel).strip().lower()
    if channel not in CHANNELS:
        raise ValueError(f"promo channel {promo_channel!r}: not one of {CHANNELS} (data contract)")
    return channel


def _default_channel(device: Any) -> str:
    return "push" if str(device or "").strip().lower() in PUSH_DEVICES else "email"


def choose_channel(promo_channel: str | None, device: str | None, engagement: Mapping[str, float] | None = None) -> str:
    """The promo's fixed channel if it has one; else the channel whose past offers the user
    engaged with most (``engagement``: channel -> share of offers followed by an order, from
    the features), when any is above 0; else push on ios/android, email otherwise."""
    fixed = _fixed_channel(promo_channel)
    if fixed is not None:
        return fixed
    default = _default_channel(device)
    scores = {c: float(v) for c, v in (engagement or {}).items() if c in CHANNELS and _present(v) and float(v) > 0}
    if scores:
        # ties: the device's default first, then the contract's channel order
        return max(scores, key=lambda c: (scores[c], c == default, -CHANNELS.index(c)))
    return default


def reason_codes(
    expected_incremental_margin: float,
    expected_cost: float,
    drivers: str = "",
    *,
    is_holdout: bool = False,
    is_exploration: bool = False,
) -> str:
    """Short human-readable why, e.g.
    ``uplift +3.20 vs none; cost 1.10; 2.91 margin per unit cost; drivers: discount_order_share_90d+, orders_30d-``."""
    codes = []
    if is_holdout:
        codes.append("holdout")
    if is_exploration:
        codes.append("exploration")
    codes += [f"uplift {expected_incremental_margin:+.2f} vs none", f"cost {expected_cost:.2f}"]
    if expected_cost > 0:
        codes.append(f"{expected_incremental_margin / expected_cost:.2f} margin per unit cost")
    if drivers:
        codes.append(f"drivers: {drivers}")
    return "; ".join(codes)


# ---------------------------------------------------------------------- a whole night at once
DEFAULT_SEND_HOUR = 10  # without a preferred hour in the features
NONE_REASON_EXPLORATION = "exploration: 'none' drawn at random"
NONE_REASON_NO_FEATURES = "no features within TTL"
NONE_REASON_NOTHING_PROFITABLE = "no arm with positive expected incremental margin within budget"


def _floats(values: Any) -> np.ndarray:
    if isinstance(values, (pd.Series, pd.Index)):
        return values.to_numpy(dtype=np.float64, na_value=np.nan)
    return np.asarray(values, dtype=np.float64)


def choose_channels(
    promo_channels: Sequence[Any], devices: Sequence[Any], engagement: Mapping[str, Sequence[float]] | None = None
) -> np.ndarray:
    """:func:`choose_channel` over arrays (one row per user), the same rule, ties included.

    ``promo_channels`` and ``devices`` hold one value per row; ``engagement`` maps a channel
    to one share per row (NaN or <= 0: no history on that channel). Returns an object array."""
    promo_channels = np.asarray(promo_channels, dtype=object)
    # The promo's fixed channel, normalised once per distinct value (None / NaN: none).
    codes, uniques = pd.factorize(promo_channels)
    fixed = np.array([_fixed_channel(u) for u in uniques] + [None], dtype=object)[codes]
    device_codes, device_values = pd.factorize(np.asarray(devices, dtype=object))
    default = np.array([_default_channel(d) for d in device_values] + [_default_channel(None)], dtype=object)[
        device_codes
    ]
    channel = default.copy()
    columns = [c for c in CHANNELS if c in (engagement or {})]
    open_rows = np.flatnonzero(np.equal(fixed, None))
    if columns and open_rows.size:
        shares = np.column_stack([_floats(engagement[c])[open_rows] for c in columns])
        with np.errstate(invalid="ignore"):
            engaged = shares > 0  # NaN: no history
        best = np.where(engaged, shares, -np.inf).max(axis=1)
        tied = engaged & (shares == best[:, None])
        # ties: the device's default first, then the contract's channel order (columns follow it)
        default_column = np.full(open_rows.size, -1, dtype=np.int64)
        for j, c in enumerate(columns):
            default_column[default[open_rows] == c] = j
        default_tied = default_column >= 0
        default_tied[default_tied] = tied[np.flatnonzero(default_tied), default_column[default_tied]]
        pick = np.where(default_tied, default_column, tied.argmax(axis=1))
        channel[open_rows] = np.where(engaged.any(axis=1), np.array(columns, dtype=object)[pick], default[open_rows])
    return np.where(np.equal(fixed, None), channel, fixed)


def delivery_columns(
    chosen_ids: Sequence[str],
    *,
    is_offer: Sequence[bool],
    is_holdout: Sequence[bool],
    is_exploration: Sequence[bool],
    has_features: Sequence[bool],
    chosen_estimate: Sequence[float],
    chosen_cost: Sequence[float],
    drivers: Sequence[str],
    language: Sequence[str],
    device: Sequence[Any],
    features: pd.DataFrame,
    promos: pd.DataFrame,
    top_by_category: Mapping[str, str],
    top_overall: str,
    run_date: dt.date,
    gate_passed: bool,
    gate_message: str | None,
    holdout_share: float,
    holdout_campaign: str,
    featured_item_ids: Sequence[Any] | None = None,
) -> pd.DataFrame:
    """The night's delivery columns, one row per user (positional, like every input).

    ``chosen_ids``: the recorded arm's id; ``is_offer``: it is not ``none``; ``chosen_estimate``
    / ``chosen_cost``: the recorded arm's expected incremental margin and cost; ``drivers``:
    text per user ("" without a model); ``language``: "en" / "zh"; ``features``: columns
    ``preferred_hour``, ``top_category`` and any ``channel_engagement_<channel>_90d``;
    ``promos``: the promotions catalogue; ``top_by_category`` / ``top_overall``: featured item
    ids, comma-separated; ``gate_passed``: False without a model; ``featured_item_ids``: per
    user, the recommender's comma-separated items when it is tonight's source (a missing
    value falls back to the category rule above).

    Returns columns ``channel``, ``message``, ``featured_item_ids`` (None without an offer),
    ``reason`` and ``send_hour``: what :func:`choose_channel`, :func:`render_message`,
    :func:`reason_codes` and :func:`expiry_date` give user by user.
    """
    chosen_ids = np.asarray(chosen_ids, dtype=object)
    n = len(chosen_ids)
    is_offer = np.asarray(is_offer, dtype=bool)
    is_exploration = np.asarray(is_exploration, dtype=bool)

    send_hour = _send_hours(features["preferred_hour"])
    reason = _no_offer_reasons(
        is_holdout, is_exploration, has_features, gate_passed, gate_message, holdout_share, holdout_campaign
    )
    channel = np.full(n, None, dtype=object)
    message = np.full(n, None, dtype=object)
    featured = np.full(n, None, dtype=object)

    offers = np.flatnonzero(is_offer)
    if offers.size:
        promo_codes, promo_ids = pd.factorize(chosen_ids[offers])
        catalogue = promos.set_index("promo_id")
        offered = [catalogue.loc[p].to_dict() | {"promo_id": p} for p in promo_ids]
        items, item_codes, item_values = _offer_items(
            offers, promo_codes, offered, features, top_by_category, top_overall, featured_item_ids
        )
        featured[offers] = np.array([v or None for v in item_values] + [None], dtype=object)[item_codes]
        message[offers] = _offer_messages(
            offers, promo_codes, offered, items, item_codes, item_values, language, run_date
        )
        engagement = {
            c: features[f"channel_engagement_{c}_90d"].iloc[offers]
            for c in CHANNELS
            if f"channel_engagement_{c}_90d" in features
        }
        promo_channels = np.array([p.get("channel") for p in offered], dtype=object)[promo_codes]
        channel[offers] = choose_channels(promo_channels, np.asarray(device, dtype=object)[offers], engagement)
        # reason_codes row by row: as fast as array string formatting here (~1.4 us per offer)
        reason[offers] = [
            reason_codes(m, c, d, is_exploration=e)
            for m, c, d, e in zip(
                np.asarray(chosen_estimate, dtype=np.float64)[offers].tolist(),
                np.asarray(chosen_cost, dtype=np.float64)[offers].tolist(),
                np.asarray(drivers, dtype=object)[offers].tolist(),
                is_exploration[offers].tolist(),
            )
        ]
    return pd.DataFrame(
        {
            "channel": channel,
            "message": message,
            "featured_item_ids": featured,
            "reason": reason,
            "send_hour": send_hour,
        }
    )


def _send_hours(hours: pd.Series) -> np.ndarray:
    """The user's preferred hour, ``DEFAULT_SEND_HOUR`` without one."""
    known = hours.notna().to_numpy()
    send_hour = np.full(len(hours), DEFAULT_SEND_HOUR, dtype=np.int64)
    send_hour[known] = np.trunc(_floats(hours)[known]).astype(np.int64)
    return send_hour


def _no_offer_reasons(
    is_holdout, is_exploration, has_features, gate_passed: bool, gate_message, holdout_share, holdout_campaign
) -> np.ndarray:
    """Without an offer: one of five fixed texts, the first that applies."""
    n = len(is_exploration)
    none_reasons = np.array(
        [
            f"holdout ({holdout_share:.0%} measurement group, {holdout_campaign})",
            NONE_REASON_EXPLORATION,
            f"fallback: {gate_message}",
            NONE_REASON_NO_FEATURES,
            NONE_REASON_NOTHING_PROFITABLE,
        ],
        dtype=object,
    )
    which = np.select(
        [
            np.asarray(is_holdout, dtype=bool),
            is_exploration,
            np.full(n, not gate_passed),
            ~np.asarray(has_features, dtype=bool),
        ],
        [0, 1, 2, 3],
        default=4,
    )
    return none_reasons[which]


def _offer_items(offers, promo_codes, offered, features, top_by_category, top_overall, featured_item_ids):
    """Featured items per offer row: the recommender's, else the category rule's; with their factorisation."""
    # A category promo features its category's items; any other the user's top category's.
    categories = [p.get("category") for p in offered]
    user_items_first = np.array([not c for c in categories], dtype=bool)
    own_items = np.array([top_by_category.get(c, top_overall) if c else None for c in categories], dtype=object)
    user_items = features["top_category"].iloc[offers].map(top_by_category).fillna(top_overall).to_numpy(dtype=object)
    items = np.where(user_items_first[promo_codes], user_items, own_items[promo_codes])
    if featured_item_ids is not None:
        recommended = np.asarray(featured_item_ids, dtype=object)[offers]
        items = np.where(pd.notna(recommended) & (recommended != ""), recommended, items)
    item_codes, item_values = pd.factorize(items, use_na_sentinel=False)
    return items, item_codes, item_values


def _offer_messages(offers, promo_codes, offered, items, item_codes, item_values, language, run_date) -> np.ndarray:
    """The rendered message per offer row, one render per distinct (promo, language, featured items)."""
    expiries = [expiry_date(run_date, int(p["valid_days"])) for p in offered]
    language_codes, languages = pd.factorize(np.asarray(language, dtype=object)[offers], use_na_sentinel=False)
    key = (promo_codes.astype(np.int64) * len(languages) + language_codes) * len(item_values) + item_codes
    group, _ = pd.factorize(key)
    first = np.zeros(group.max() + 1, dtype=np.int64)
    first[group] = np.arange(group.size)  # any row of a group stands for it
    texts = [
        render_message(
            offered[promo_codes[r]],
            expiries[promo_codes[r]],
            items[r].split(",") if items[r] else None,
            language=str(languages[language_codes[r]]),
        )
        for r in first
    ]
    return np.array(texts, dtype=object)[group]
