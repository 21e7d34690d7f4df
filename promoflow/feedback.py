"""promo_feedback: what earlier nights' assignments led to, as the warehouse now sees it.

Orders and redemptions are attributed by dbt (``int_exposure_outcomes`` → ``fct_promo_outcomes``):
an order counts for an exposure when it falls in ``[sent_ts, sent_ts + valid_days)``; a
redemption is such an order carrying the exposure's promo_id. The platform's own published
assignments are exposures too (rows carrying the published ``run_date``, whether the sender
landed them, ``exposure_source = 'landed'``, or not, ``'published'``; holdout rows included), so
once their windows close they are training rows of the next night. This module summarises
the attribution per published run for the DAG's log and return value.
"""

from __future__ import annotations

from datetime import date

from promoflow.settings import Settings
from promoflow.warehouse import ANALYTICS_SCHEMA, Warehouse


def attribution_summary(settings: Settings, run_date: date) -> dict:
    """Per earlier published run_date: sends, matured sends, orders, redemptions, discount, margin."""
    with Warehouse(settings) as wh:
        rows = wh.query(
            f"""select run_date, count(*) as sends,
                       sum(case when is_matured then 1 else 0 end) as matured,
                       sum(case when is_holdout then 1 else 0 end) as holdout,
                       sum(converted) as converted, sum(redeemed) as redeemed,
                       sum(discount_amount) as discount, sum(order_margin) as margin
                from {ANALYTICS_SCHEMA}.fct_promo_outcomes
                where run_date is not null and run_date < ?
                group by run_date order by run_date""",
            [run_date],
        )
    runs = [
        {
            "run_date": str(r[0]),
            "sends": int(r[1]),
            "matured": int(r[2] or 0),
            "holdout": int(r[3] or 0),
            "converted": int(r[4] or 0),
            "redeemed": int(r[5] or 0),
            "discount": float(r[6] or 0.0),
            "margin": float(r[7] or 0.0),
        }
        for r in rows
    ]
    return {
        "run_date": run_date.isoformat(),
        "published_runs": len(runs),
        "matured_platform_sends": sum(r["matured"] for r in runs),
        "redemptions": sum(r["redeemed"] for r in runs),
        "runs": runs,
    }
