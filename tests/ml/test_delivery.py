"""Offer messages, channel choice and reason codes."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from ml.delivery import choose_channel, expiry_date, reason_codes, render_message

EXPIRY = dt.date(2026, 3, 7)


def promo(promo_type, value, min_spend=0.0, max_discount=None, category=None, promo_id="p1"):
    return {
        "promo_id": promo_id,
        "promo_type": promo_type,
        "value": value,
        "min_spend": min_spend,
        "max_discount": max_discount,
        "category": category,
        "channel": None,
        "valid_days": 7,
    }


@pytest.mark.parametrize(
    "offer, expected",
    [
        (promo("percent_off", 15.0), "Take 15% off everything. Valid until 07 March 2026."),
        (
            promo("percent_off", 12.5, min_spend=40, max_discount=10, category="shoes"),
            "Take 12.5% off shoes items when you spend $40 or more (up to $10 off). Valid until 07 March 2026.",
        ),
        (promo("amount_off", 5.0), "Get $5 off on your next order. Valid until 07 March 2026."),
        (
            promo("amount_off", 7.5, min_spend=30, category="books"),
            "Get $7.50 off on books orders when you spend $30 or more. Valid until 07 March 2026.",
        ),
        (promo("spend_threshold", 10.0, min_spend=50), "Spend $50 and save $10. Valid until 07 March 2026."),
        (
            promo("spend_threshold", 10.0, min_spend=50, category="toys"),
            "Spend $50 on toys items and save $10. Valid until 07 March 2026.",
        ),
        (promo("free_shipping", 4.99), "Free shipping on your next order. Valid until 07 March 2026."),
        (
            promo("free_shipping", 4.99, min_spend=25.0, category="garden"),
            "Free shipping on garden orders when you spend $25 or more. Valid until 07 March 2026.",
        ),
        (promo("gift", 8.0), "A free gift worth $8 with your next order. Valid until 07 March 2026."),
        (
            promo("gift", 8.0, min_spend=60, category="beauty"),
            "A free gift worth $8 with your next beauty order when you spend $60 or more. Valid until 07 March 2026.",
        ),
    ],
)
def test_each_promo_type_has_an_english_template(offer, expected):
    assert render_message(offer, EXPIRY) == expected


def test_nan_fields_from_a_dataframe_row_read_as_absent():
    offer = promo("percent_off", 20.0, min_spend=float("nan"), max_discount=math.nan, category=math.nan)
    assert render_message(offer, EXPIRY) == "Take 20% off everything. Valid until 07 March 2026."


def test_featured_items_are_listed_up_to_three():
    text = render_message(promo("amount_off", 5.0), EXPIRY, ["Trail shoe", "Rain jacket", "Socks", "Cap"])
    assert text.endswith("Picked for you: Trail shoe, Rain jacket, Socks.")
    assert "Picked" not in render_message(promo("amount_off", 5.0), EXPIRY, [])


def test_unknown_promo_type_is_named():
    with pytest.raises(ValueError, match="bogo"):
        render_message(promo("bogo", 1.0, promo_id="p9"), EXPIRY)


def test_expiry_is_the_last_redeemable_day():
    assert expiry_date(dt.date(2026, 3, 1), 7) == dt.date(2026, 3, 7)
    assert expiry_date(dt.date(2026, 3, 1), 1) == dt.date(2026, 3, 1)


@pytest.mark.parametrize(
    "promo_channel, device, expected",
    [
        ("sms", "ios", "sms"),
        ("In_App", "web", "in_app"),
        (None, "ios", "push"),
        (None, "Android", "push"),
        (None, "web", "email"),
        ("", "tablet", "email"),
        (float("nan"), None, "email"),
    ],
)
def test_channel_is_fixed_by_the_promo_or_follows_the_device(promo_channel, device, expected):
    assert choose_channel(promo_channel, device) == expected


def test_unknown_fixed_channel_is_rejected():
    with pytest.raises(ValueError, match="fax"):
        choose_channel("fax", "ios")


def test_reason_codes_are_short_and_readable():
    assert reason_codes(3.2, 1.6, "orders_30d+, tenure_days-") == (
        "uplift +3.20 vs none; cost 1.60; 2.00 margin per unit cost; drivers: orders_30d+, tenure_days-"
    )
    assert reason_codes(-0.5, 0.0, is_holdout=True) == "holdout; uplift -0.50 vs none; cost 0.00"
    assert reason_codes(1.0, 0.5, is_exploration=True).startswith("exploration; ")


def test_chinese_templates_carry_value_threshold_category_expiry_and_items():
    promo = {
        "promo_id": "p1",
        "promo_type": "spend_threshold",
        "value": 12.0,
        "min_spend": 60.0,
        "max_discount": None,
        "category": "beauty",
        "channel": None,
        "valid_days": 7,
    }
    text = render_message(promo, dt.date(2026, 11, 6), ["i001", "i002"], language="zh")
    assert text == "beauty类商品满$60减$12。有效期至2026年11月6日。为您精选：i001、i002。"
    percent = render_message(
        promo | {"promo_type": "percent_off", "value": 15.0, "min_spend": 0.0, "max_discount": 20.0, "category": None},
        dt.date(2026, 11, 6),
        language="zh",
    )
    assert percent.startswith("全场商品立享15%优惠（最高减$20）。")
    for promo_type in ("amount_off", "free_shipping", "gift"):
        assert "有效期至" in render_message(promo | {"promo_type": promo_type}, dt.date(2026, 11, 6), language="zh")
    with pytest.raises(ValueError, match="language"):
        render_message(promo, dt.date(2026, 11, 6), language="fr")


def test_channel_follows_engagement_history_unless_the_promo_fixes_it():
    assert choose_channel(None, "web", {"sms": 0.4, "email": 0.1, "push": 0.0}) == "sms"
    assert choose_channel(None, "ios", {"email": 0.2, "push": 0.2}) == "push"  # tie: the device's default
    assert choose_channel(None, "ios", {"email": 0.0, "push": float("nan")}) == "push"  # no history
    assert choose_channel("email", "ios", {"sms": 0.9}) == "email"
