"""Which earlier as_of dates a night computes features for (no Spark session needed)."""

from __future__ import annotations

from datetime import date

from spark_jobs.nightly import exposure_dates_without_features


def test_only_exposure_days_inside_the_window_without_features_are_backfilled(tmp_path):
    for day in ["2026-08-01", "2026-10-01", "2026-10-20", "2026-10-30", "2026-10-31", "2026-11-01"]:
        (tmp_path / "clean" / "exposures" / f"dt={day}").mkdir(parents=True)
    (tmp_path / "clean" / "exposures" / "dt=not-a-date").mkdir()
    (tmp_path / "features" / "user_features" / "as_of=2026-10-20").mkdir(parents=True)
    got = exposure_dates_without_features(tmp_path, date(2026, 10, 31), 60)
    assert got == [date(2026, 10, 1), date(2026, 10, 30)]
    assert exposure_dates_without_features(tmp_path / "empty", date(2026, 10, 31), 60) == []
