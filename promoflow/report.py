"""The nightly campaign report: one self-contained HTML page per night, the page marketing opens.

Written with the export to ``{export_uri}/reports/run_date=D/report.html`` (folder or S3) and
linked from the run summary. The numbers behind every plot come from the small functions
below (pure pandas, unit-tested); :func:`render_html` only draws them (matplotlib, PNGs inlined
as base64, so the file opens anywhere without a server).
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from promoflow import storage
from promoflow.contract import NONE_ARM
from promoflow.settings import Settings

Z95 = 1.959964


def report_uri(settings: Settings, run_date: date) -> str:
    return storage.join(settings.export_uri, "reports", f"run_date={run_date.isoformat()}", "report.html")


# ------------------------------------------------------------------ the numbers behind each plot
def budget_use(budget: float, assignments: pd.DataFrame) -> dict[str, float]:
    """Budget available vs the expected discount cost of tonight's offers."""
    used = float(assignments["expected_cost"].sum())
    return {"available": float(budget), "used": used, "share_used": used / budget if budget > 0 else 0.0}


def offers_by_promo_and_channel(assignments: pd.DataFrame) -> pd.DataFrame:
    """Offers per promo (rows) x channel (columns); 'none' rows excluded."""
    offers = assignments[assignments["promo_id"] != NONE_ARM]
    if offers.empty:
        return pd.DataFrame()
    return offers.pivot_table(
        index="promo_id", columns="channel", values="expected_cost", aggfunc="size", fill_value=0
    ).astype(int)


def expected_by_promo(assignments: pd.DataFrame) -> pd.DataFrame:
    """Per promo: offers, expected incremental margin and expected cost (sums over tonight's offers)."""
    offers = assignments[assignments["promo_id"] != NONE_ARM]
    return (
        offers.groupby("promo_id")
        .agg(
            offers=("promo_id", "size"),
            expected_incremental_margin=("expected_incremental_margin", "sum"),
            expected_cost=("expected_cost", "sum"),
        )
        .sort_index()
    )


def exploration_summary(assignments: pd.DataFrame) -> dict[str, float]:
    """Share of users drawn by exploration and the expected cost of their offers."""
    explored = assignments["is_exploration"].astype(bool)
    return {
        "users": int(explored.sum()),
        "share": float(explored.mean()) if len(assignments) else 0.0,
        "expected_cost": float(assignments.loc[explored, "expected_cost"].sum()),
    }


def gate_intervals(gate: Mapping[str, Any] | None) -> pd.DataFrame:
    """The gate's estimates of the policy's incremental margin per user, with 95% intervals (DR and IPS)."""
    gate = gate or {}
    rows = []
    for label, value, stderr in (
        ("DR", gate.get("candidate_value_per_row"), gate.get("candidate_stderr")),
        ("IPS", gate.get("candidate_ips_value_per_row"), gate.get("candidate_ips_stderr")),
    ):
        if value is not None and stderr is not None and math.isfinite(stderr):
            rows.append(
                {"estimator": label, "estimate": value, "ci_low": value - Z95 * stderr, "ci_high": value + Z95 * stderr}
            )
    return pd.DataFrame(rows, columns=["estimator", "estimate", "ci_low", "ci_high"])


def realised_vs_expected(performance: pd.DataFrame, run_date: date) -> pd.DataFrame:
    """Every matured earlier night x promo: realised margin uplift per send vs the holdout (95% interval)
    next to the uplift per send the night expected."""
    if performance.empty:
        return pd.DataFrame(columns=["run_date", "promo_id", "sends", "realised", "ci_low", "ci_high", "expected"])
    done = performance[
        (pd.to_datetime(performance["run_date"]).dt.date < run_date) & performance["is_matured"].astype(bool)
    ]
    done = done[done["margin_uplift_per_user"].notna()]
    out = pd.DataFrame(
        {
            "run_date": pd.to_datetime(done["run_date"]).dt.date,
            "promo_id": done["promo_id"],
            "sends": done["sends"].astype(int),
            "realised": done["margin_uplift_per_user"].astype(float),
            "ci_low": done["margin_uplift_ci_low"].astype(float),
            "ci_high": done["margin_uplift_ci_high"].astype(float),
            "expected": done["expected_incremental_margin"].astype(float) / done["sends"].where(done["sends"] > 0),
        }
    )
    return out.sort_values(["run_date", "promo_id"]).reset_index(drop=True)


def qini_curves(selection: Mapping[str, Any] | None) -> dict[str, dict[str, list[float]]]:
    """The production model's Qini curve per arm on held-out rows (from the model's metrics)."""
    selection = selection or {}
    entry = (selection.get("models") or {}).get(selection.get("production_model") or "", {})
    curves = {}
    for arm, q in (entry.get("qini") or {}).items():
        if q.get("curve"):
            curves[arm] = {"share": q["curve_share"], "curve": q["curve"], "qini": q.get("qini")}
    return curves


def fairness_flags(fairness: pd.DataFrame, max_ratio: float) -> pd.DataFrame:
    """Groups whose offer rate is over ``max_ratio`` times, or under 1/``max_ratio`` of, the overall rate."""
    if fairness.empty:
        return fairness.assign(flagged=pd.Series(dtype=bool))
    ratio = fairness["offer_rate"] / fairness["overall_offer_rate"].where(fairness["overall_offer_rate"] > 0)
    flagged = (ratio > max_ratio) | (ratio < 1 / max_ratio)
    return fairness.assign(offer_rate_ratio=ratio, flagged=flagged.fillna(False))


# ------------------------------------------------------------------ reading what the night wrote
def night_inputs(settings: Settings, run_date: date) -> dict[str, pd.DataFrame]:
    """Tonight's published rows, every night's promo_performance and tonight's fairness audit."""
    from promoflow.warehouse import ANALYTICS_SCHEMA, Warehouse

    with Warehouse(settings) as wh:
        assignments = wh.query_arrow(
            f"select promo_id, channel, expected_cost, expected_incremental_margin, is_holdout, is_exploration "
            f"from {wh.default_schema}.promo_assignments where run_date = ?",
            [run_date],
        ).to_pandas()
        performance = (
            wh.query_arrow(f"select * from {ANALYTICS_SCHEMA}.promo_performance").to_pandas()
            if wh.table_exists(ANALYTICS_SCHEMA, "promo_performance")
            else pd.DataFrame()
        )
        fairness = (
            wh.query_arrow(
                f"select * from {ANALYTICS_SCHEMA}.fairness_audit where run_date = ?", [run_date]
            ).to_pandas()
            if wh.table_exists(ANALYTICS_SCHEMA, "fairness_audit")
            else pd.DataFrame()
        )
    return {"assignments": assignments, "performance": performance, "fairness": fairness}


def report_data(
    settings: Settings, run_date: date, summary: Mapping[str, Any], inputs: Mapping[str, pd.DataFrame]
) -> dict:
    """Every number the page shows, from tonight's rows and the tasks' results."""
    assignments = inputs["assignments"]
    model = summary.get("model") or {}
    return {
        "run_date": run_date,
        "users": len(assignments),
        "offers": int((assignments["promo_id"] != NONE_ARM).sum()),
        "holdout": int(assignments["is_holdout"].astype(bool).sum()),
        "budget": budget_use(settings.budget, assignments),
        "offers_by_channel": offers_by_promo_and_channel(assignments),
        "expected_by_promo": expected_by_promo(assignments),
        "exploration": exploration_summary(assignments),
        "gate": {
            "passed": bool((summary.get("assign") or {}).get("gate_passed")),
            "message": (summary.get("assign") or {}).get("gate"),
            "production_model": model.get("production_model"),
            "model_version": model.get("model_version"),
            "intervals": gate_intervals(model.get("gate")),
        },
        "realised": realised_vs_expected(inputs["performance"], run_date),
        "qini": qini_curves({**(model.get("selection") or {}), "production_model": model.get("production_model")}),
        "fairness": fairness_flags(inputs["fairness"], settings.fairness_max_ratio),
        "fairness_max_ratio": settings.fairness_max_ratio,
        "links": links(settings, model.get("model_version")),
    }


def links(settings: Settings, model_version: str | None) -> dict[str, str]:
    from ml.model_store import MODEL_NAME

    data = Path(settings.data_dir)
    out = {
        "GX Data Docs": (data / "gx" / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html").as_uri(),
        "dbt docs (make docs)": (data / "dbt_docs" / "static_index.html").as_uri(),
    }
    if model_version:
        card = storage.join(settings.model_store_uri, MODEL_NAME, model_version, "model_card.md")
        out["model card"] = card if storage.is_s3(card) else Path(card).resolve().as_uri()
    return out


# ------------------------------------------------------------------ drawing
def _png(fig) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return (
        '<img class="plot" alt="plot" src="data:image/png;base64,' + base64.b64encode(buffer.getvalue()).decode() + '">'
    )


def _plots(data: dict) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots = {}
    fig, ax = plt.subplots(figsize=(5, 1.6))
    ax.barh(["available", "used"], [data["budget"]["available"], data["budget"]["used"]], color=["#bbb", "#2a7"])
    ax.set_xlabel("expected discount cost")
    plots["budget"] = _png(fig)

    if not data["offers_by_channel"].empty:
        fig, ax = plt.subplots(figsize=(6, 2.8))
        data["offers_by_channel"].plot.barh(stacked=True, ax=ax)
        ax.set_xlabel("offers")
        plots["offers"] = _png(fig)
    if not data["expected_by_promo"].empty:
        fig, ax = plt.subplots(figsize=(6, 2.8))
        data["expected_by_promo"][["expected_incremental_margin", "expected_cost"]].plot.barh(ax=ax)
        ax.axvline(0, color="k", lw=0.5)
        plots["expected"] = _png(fig)
    if not data["gate"]["intervals"].empty:
        g = data["gate"]["intervals"].set_index("estimator").astype(float)
        fig, ax = plt.subplots(figsize=(5, 1.6))
        ax.errorbar(
            g["estimate"].to_numpy(),
            list(g.index),
            xerr=[(g["estimate"] - g["ci_low"]).to_numpy(), (g["ci_high"] - g["estimate"]).to_numpy()],
            fmt="o",
            capsize=4,
        )
        ax.axvline(0, color="r", lw=1, ls="--")
        ax.set_xlabel("incremental margin per user vs sending nothing (95% interval)")
        plots["gate"] = _png(fig)
    if not data["realised"].empty:
        r = data["realised"]
        labels = [f"{d} {p}" for d, p in zip(r["run_date"], r["promo_id"])]
        fig, ax = plt.subplots(figsize=(6, 0.4 * len(r) + 1))
        ax.errorbar(
            r["realised"].to_numpy(),
            labels,
            xerr=[(r["realised"] - r["ci_low"]).to_numpy(), (r["ci_high"] - r["realised"]).to_numpy()],
            fmt="o",
            capsize=3,
            label="realised",
        )
        ax.scatter(r["expected"].to_numpy(), labels, marker="x", color="k", label="expected", zorder=3)
        ax.axvline(0, color="r", lw=1, ls="--")
        ax.set_xlabel("margin uplift per send vs holdout")
        ax.legend(loc="best", fontsize=8)
        plots["realised"] = _png(fig)
    if data["qini"]:
        fig, ax = plt.subplots(figsize=(6, 3))
        for arm, q in data["qini"].items():
            ax.plot(
                [0, *q["share"]],
                [0, *q["curve"]],
                label=f"{arm} (Qini {q['qini']:.4f})" if q["qini"] is not None else arm,
            )
            ax.plot([0, 1], [0, q["curve"][-1]], color="#999", lw=0.6, ls=":")
        ax.set_xlabel("share of held-out rows targeted (by predicted uplift)")
        ax.set_ylabel("cumulative uplift / row")
        ax.legend(fontsize=7)
        plots["qini"] = _png(fig)
    fair = data["fairness"]
    if not fair.empty:
        fig, ax = plt.subplots(figsize=(6, 0.3 * len(fair) + 1))
        labels = [f"{d}={g}" for d, g in zip(fair["dimension"], fair["group_value"])]
        ax.barh(labels, fair["offer_rate"], color=["#d33" if f else "#48c" for f in fair["flagged"]])
        ax.axvline(float(fair["overall_offer_rate"].iloc[0]), color="k", lw=1, ls="--")
        ax.set_xlabel("offer rate (dashed: overall; red: flagged)")
        plots["fairness"] = _png(fig)
    return plots


def _table(frame: pd.DataFrame, index: bool = True) -> str:
    if frame.empty:
        return "<p><i>none</i></p>"
    return frame.to_html(index=index, float_format=lambda v: f"{v:,.3f}", border=0, classes="t")


def render_html(data: dict) -> str:
    """The self-contained page: headline numbers, plots (inline PNG), the tables behind them, links."""
    plots = _plots(data)
    esc = html.escape
    b, e, gate = data["budget"], data["exploration"], data["gate"]
    flagged = data["fairness"][data["fairness"]["flagged"]] if not data["fairness"].empty else data["fairness"]
    fairness_cols = [
        "dimension",
        "group_value",
        "users",
        "offer_rate",
        "overall_offer_rate",
        "offer_rate_ratio",
        "mean_expected_incremental_margin",
        "realised_margin_uplift_per_user",
        "flagged",
    ]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>promo_nightly {data['run_date']}: campaign report</title>",
        "<style>body{font-family:sans-serif;max-width:980px;margin:2em auto;color:#222}h2{border-bottom:1px solid #ddd}"
        ".t{border-collapse:collapse;font-size:13px}.t td,.t th{padding:2px 8px;border-bottom:1px solid #eee;text-align:right}"
        ".warn{color:#b00;font-weight:bold}.ok{color:#070}</style></head><body>",
        f"<h1>Campaign report — night of {data['run_date']}</h1>",
        f"<p>{data['users']:,} users; {data['offers']:,} offers; {data['holdout']:,} held out. "
        f"Model <code>{esc(str(gate['model_version']))}</code> ({esc(str(gate['production_model']))}).</p>",
        "<h2 id='budget'>Budget</h2>",
        f"<p>Used <b>{b['used']:,.2f}</b> of {b['available']:,.2f} ({b['share_used']:.1%}).</p>",
        plots.get("budget", ""),
        "<h2 id='offers'>Offers per promo and channel</h2>",
        plots.get("offers", ""),
        _table(data["offers_by_channel"]),
        "<h2 id='expected'>Expected incremental margin and cost per promo</h2>",
        plots.get("expected", ""),
        _table(data["expected_by_promo"]),
        "<h2 id='gate'>Off-policy gate</h2>",
        f"<p class='{'ok' if gate['passed'] else 'warn'}'>{'passed' if gate['passed'] else 'fell back to sending nothing'}</p>",
        f"<p>{esc(str(gate['message']))}</p>",
        plots.get("gate", ""),
        _table(gate["intervals"], index=False),
        "<h2 id='realised'>Earlier nights: realised uplift vs holdout (95% interval) and what was expected</h2>",
        plots.get("realised", "<p><i>no matured earlier night yet</i></p>"),
        _table(data["realised"], index=False),
        "<h2 id='qini'>Production model: Qini curves on held-out rows</h2>",
        plots.get("qini", "<p><i>no held-out arm with enough rows</i></p>"),
        "<h2 id='exploration'>Exploration</h2>",
        f"<p>{e['users']:,} users ({e['share']:.1%}) drawn at random; expected cost {e['expected_cost']:,.2f}.</p>",
        "<h2 id='fairness'>Fairness audit</h2>",
        f"<p>Offer rate, mean expected value and realised uplift by region, device, segment and tenure band; a group "
        f"whose offer rate is over {data['fairness_max_ratio']:g}x or under 1/{data['fairness_max_ratio']:g} of the overall "
        f"rate is flagged (a warning, not a failure).</p>",
        f"<p class='warn'>{len(flagged)} group(s) flagged: {esc(', '.join(f'{d}={g}' for d, g in zip(flagged['dimension'], flagged['group_value'])))}</p>"
        if len(flagged)
        else "<p class='ok'>no group flagged</p>",
        plots.get("fairness", ""),
        _table(data["fairness"][[c for c in fairness_cols if c in data["fairness"].columns]], index=False),
        "<h2 id='links'>Links</h2><ul>",
        *[f"<li><a href='{esc(url)}'>{esc(name)}</a></li>" for name, url in data["links"].items()],
        "</ul></body></html>",
    ]
    return "\n".join(parts)


def write_report(settings: Settings, run_date: date, summary: Mapping[str, Any]) -> dict:
    """Render tonight's report and write it next to the export; returns where, and the fairness warnings."""
    data = report_data(settings, run_date, summary, night_inputs(settings, run_date))
    uri = report_uri(settings, run_date)
    storage.storage_for(uri, settings.s3_endpoint_url).write_bytes(uri, render_html(data).encode())
    fair = data["fairness"]
    flagged = fair[fair["flagged"]] if not fair.empty else fair
    return {
        "report": uri if storage.is_s3(uri) else Path(uri).resolve().as_uri(),
        "fairness_flags": [
            f"{r.dimension}={r.group_value}: offer rate {r.offer_rate:.3f} vs overall {r.overall_offer_rate:.3f}"
            for r in flagged.itertuples()
        ],
    }
