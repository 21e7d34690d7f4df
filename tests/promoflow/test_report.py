"""The campaign report: the numbers behind each plot, hand-computed on tiny frames, and the page itself."""

from __future__ import annotations

import base64
import re
from datetime import date

import pandas as pd
import pytest

from promoflow import report
from promoflow.settings import Settings

RUN_DATE = date(2026, 10, 9)


def _assignments() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "promo_id": ["p10", "p10", "ship", "none", "none", "p10"],
            "channel": ["email", "push", "email", None, None, "email"],
            "expected_cost": [2.0, 3.0, 1.5, 0.0, 0.0, 2.5],
            "expected_incremental_margin": [4.0, -1.0, 0.5, 0.0, 0.0, 3.0],
            "is_holdout": [False, False, False, True, False, False],
            "is_exploration": [False, True, False, False, False, True],
        }
    )


def _performance() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "run_date": [date(2026, 10, 1), date(2026, 10, 1), date(2026, 10, 8), date(2026, 10, 9)],
            "promo_id": ["p10", "ship", "p10", "p10"],
            "sends": [40, 10, 30, 20],
            "margin_uplift_per_user": [1.5, None, 2.0, 9.0],
            "margin_uplift_ci_low": [0.5, None, -1.0, 1.0],
            "margin_uplift_ci_high": [2.5, None, 5.0, 17.0],
            "expected_incremental_margin": [80.0, 5.0, 30.0, 10.0],
            "is_matured": [True, True, False, True],
        }
    )


def _fairness() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "run_date": [RUN_DATE] * 4,
            "dimension": ["region", "region", "device", "device"],
            "group_value": ["north", "south", "ios", "web"],
            "users": [50, 50, 60, 40],
            "offers": [30, 5, 20, 15],
            "offer_rate": [0.6, 0.1, 0.333, 0.375],
            "overall_offer_rate": [0.35] * 4,
            "mean_expected_incremental_margin": [1.0, 0.2, 0.5, 0.6],
            "realised_margin_uplift_per_user": [None, None, 0.4, None],
        }
    )


def test_budget_offers_and_expected_values_per_promo():
    a = _assignments()
    assert report.budget_use(20.0, a) == {"available": 20.0, "used": 9.0, "share_used": 0.45}
    by_channel = report.offers_by_promo_and_channel(a)
    assert (
        by_channel.loc["p10", "email"] == 2
        and by_channel.loc["p10", "push"] == 1
        and by_channel.loc["ship", "email"] == 1
    )
    assert "none" not in by_channel.index and by_channel.to_numpy().sum() == 4
    expected = report.expected_by_promo(a)
    assert expected.loc["p10"].tolist() == [3, 6.0, 7.5]
    assert expected.loc["ship"].tolist() == [1, 0.5, 1.5]


def test_exploration_share_and_cost():
    assert report.exploration_summary(_assignments()) == {"users": 2, "share": 2 / 6, "expected_cost": 5.5}


def test_gate_intervals_are_95_percent_normal_intervals():
    g = report.gate_intervals(
        {
            "candidate_value_per_row": 0.4,
            "candidate_stderr": 0.1,
            "candidate_ips_value_per_row": 0.3,
            "candidate_ips_stderr": 0.2,
        }
    )
    dr = g.set_index("estimator").loc["DR"]
    assert dr["ci_low"] == pytest.approx(0.4 - 0.196, abs=1e-4) and dr["ci_high"] == pytest.approx(0.596, abs=1e-4)
    assert g.set_index("estimator").loc["IPS", "ci_low"] == pytest.approx(0.3 - 0.392, abs=1e-4)
    assert report.gate_intervals({"passed": False, "message": "no held-out exposures"}).empty


def test_realised_uplift_only_for_matured_earlier_nights_with_expected_per_send():
    r = report.realised_vs_expected(_performance(), RUN_DATE)
    # 10-08 has not matured, 10-09 is tonight, ship of 10-01 had no holdout estimate
    assert r[["run_date", "promo_id"]].values.tolist() == [[date(2026, 10, 1), "p10"]]
    row = r.iloc[0]
    assert (row.realised, row.ci_low, row.ci_high, row.expected, row.sends) == (1.5, 0.5, 2.5, 2.0, 40)


def test_qini_curves_of_the_production_model_only():
    selection = {
        "production_model": "dr_ridge",
        "models": {
            "dr_ridge": {
                "qini": {"p10": {"qini": 0.01, "curve_share": [0.5, 1.0], "curve": [0.2, 0.1]}, "ship": {"qini": None}}
            },
            "tf_multihead": {"qini": {"p10": {"qini": 0.5, "curve_share": [1.0], "curve": [9.0]}}},
        },
    }
    assert report.qini_curves(selection) == {"p10": {"share": [0.5, 1.0], "curve": [0.2, 0.1], "qini": 0.01}}


def test_fairness_flags_groups_beyond_the_ratio_either_way():
    flagged = report.fairness_flags(_fairness(), max_ratio=1.5)
    assert flagged.loc[flagged["flagged"], "group_value"].tolist() == ["north", "south"]  # 0.6/0.35=1.71, 0.1/0.35=0.29
    assert flagged["offer_rate_ratio"].iloc[0] == pytest.approx(0.6 / 0.35)
    assert not report.fairness_flags(_fairness(), max_ratio=4).flagged.any()


def test_page_is_self_contained_with_a_plot_per_section(tmp_path):
    settings = Settings.from_env(env={"PROMO_DATA_DIR": str(tmp_path), "PROMO_BUDGET": "20"})
    summary = {
        "assign": {"gate_passed": True, "gate": "published the dr_ridge policy"},
        "model": {
            "model_version": "2026-10-09-abc",
            "production_model": "dr_ridge",
            "gate": {"candidate_value_per_row": 0.4, "candidate_stderr": 0.1},
            "selection": {
                "models": {
                    "dr_ridge": {"qini": {"p10": {"qini": 0.01, "curve_share": [0.5, 1.0], "curve": [0.2, 0.1]}}}
                }
            },
        },
    }
    inputs = {"assignments": _assignments(), "performance": _performance(), "fairness": _fairness()}
    page = report.render_html(report.report_data(settings, RUN_DATE, summary, inputs))
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 7  # budget, offers, expected, gate, realised, qini, fairness
    assert all(base64.b64decode(i).startswith(b"\x89PNG") for i in images)
    assert "http://" not in page and "https://" not in page and "<script" not in page  # opens offline
    assert "Used <b>9.00</b> of 20.00 (45.0%)" in page
    assert "1 group(s) flagged: region=south" in page  # default ratio 2: 0.1/0.35 < 1/2; north's 0.6/0.35 < 2
    assert "model_card.md" in page


def test_report_is_written_next_to_the_export_on_s3(s3_bucket, tmp_path, monkeypatch):
    monkeypatch.setattr(
        report,
        "night_inputs",
        lambda settings, day: {
            "assignments": _assignments(),
            "performance": pd.DataFrame(),
            "fairness": pd.DataFrame(),
        },
    )
    settings = Settings.from_env(
        env={
            "PROMO_DATA_DIR": str(tmp_path),
            "PROMO_EXPORT_URI": f"s3://{s3_bucket}/export",
            "PROMO_S3_ENDPOINT_URL": __import__("os").environ["PROMO_S3_ENDPOINT_URL"],
        }
    )
    written = report.write_report(settings, RUN_DATE, {"assign": {}, "model": {}})
    assert written == {
        "report": f"s3://{s3_bucket}/export/reports/run_date=2026-10-09/report.html",
        "fairness_flags": [],
    }
    from promoflow import storage

    page = storage.storage_for(written["report"], settings.s3_endpoint_url).read_bytes(written["report"]).decode()
    assert "Campaign report — night of 2026-10-09" in page and "no matured earlier night yet" in page
