"""Delivery of a chosen offer: message text, channel and reason codes.

Messages are English and Simplified Chinese templates per ``promo_type`` of the promotions catalogue (see
/work/shared/contracts/DATA_CONTRACT.md): they state the value, the spend threshold and the
category when the offer has them, and the expiry date.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any, Mapping, Sequence

PROMO_TYPES = ("percent_off", "amount_off", "spend_threshold", "free_shipping", "gift")
CHANNELS = ("email", "push", "sms", "in_app")
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
        return _render_zh(promo_type, value, min_spend, max_discount, category, expiry_date, featured_item_names, currency)
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


def choose_channel(promo_channel: str | None, device: str | None, engagement: Mapping[str, float] | None = None) -> str:
    """The promo's fixed channel if it has one; else the channel whose past offers the user
    engaged with most (``engagement``: channel -> share of offers followed by an order, from
    the features), when any is above 0; else push on ios/android, email otherwise."""
    if _present(promo_channel):
        channel = str(promo_channel).strip().lower()
        if channel not in CHANNELS:
            raise ValueError(f"promo channel {promo_channel!r}: not one of {CHANNELS} (data contract)")
        return channel
    default = "push" if str(device or "").strip().lower() in PUSH_DEVICES else "email"
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
