"""Date windows shared by the feature jobs: as_of dates, [as_of - days, as_of) windows, event days.

Every feature is as of D 00:00 UTC and reads data strictly before D; these helpers put daily
rows onto the as_of dates whose windows hold them, for one date or many in one plan.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import TimestampType


def utc_ts(name: str) -> Column:
    """A UTC timestamp column whether stored as TIMESTAMP or TIMESTAMP_NTZ."""
    return F.col(name).cast(TimestampType())


def with_event_day(events: DataFrame) -> DataFrame:
    return events.withColumn("event_ts", utc_ts("event_ts")).withColumn("dt", F.to_date("event_ts"))


def in_window(dt: Column, as_of: date, days: int) -> Column:
    """dt in [as_of - days, as_of)."""
    return (dt >= F.lit(as_of - timedelta(days=days))) & (dt < F.lit(as_of))


def sorted_as_of_dates(as_of_dates) -> list[date]:
    """The distinct as_of dates, sorted; at least one."""
    dates = sorted(set(as_of_dates))
    if not dates:
        raise ValueError("as_of_dates is empty: give at least one as_of date")
    for d in dates:
        if not isinstance(d, date) or isinstance(d, datetime):
            raise TypeError(f"as_of dates must be datetime.date values, got {d!r}")
    return dates


def date_array(dates: list[date]) -> Column:
    return F.array(*[F.lit(d) for d in dates])


def col_in_window(dt: Column, as_of: Column, days: int) -> Column:
    """dt in [as_of - days, as_of), as_of a DATE column."""
    return (dt >= F.date_sub(as_of, days)) & (dt < as_of)


def onto_as_of_dates(df: DataFrame, dates: list[date], days: int) -> DataFrame:
    """Each row of ``df`` once per as_of date whose window [as_of - days, as_of) holds its dt.

    Adds a DATE column ``as_of``; rows in no window are dropped. A row lands on at most
    ``days`` dates, so the output is at most ``days`` times the rows of the union window.
    """
    in_union = (F.col("dt") >= F.lit(dates[0] - timedelta(days=days))) & (F.col("dt") < F.lit(dates[-1]))
    if len(dates) == 1:  # a plain filter, as before the multi-date roll-up
        return df.filter(in_window(F.col("dt"), dates[0], days)).withColumn("as_of", F.lit(dates[0]))
    matching = F.filter(date_array(dates), lambda a: col_in_window(F.col("dt"), a, days))
    return df.filter(in_union).withColumn("as_of", F.explode(matching))


def onto_target_rows(df: DataFrame, targets: DataFrame, days: int) -> DataFrame:
    """Each row of ``df`` once per (user_id, as_of) pair of ``targets`` whose window
    [as_of - days, as_of) holds its dt: a join on user_id, so only the targets' users' rows
    are read and a row lands on at most as many dates as its user has pairs."""
    return df.join(targets.select("user_id", "as_of"), "user_id").filter(
        col_in_window(F.col("dt"), F.col("as_of"), days)
    )


def with_as_of_dates(df: DataFrame, dates: list[date]) -> DataFrame:
    """Every row of ``df`` once per as_of date (a cross join with the dates)."""
    if len(dates) == 1:
        return df.withColumn("as_of", F.lit(dates[0]))
    return df.withColumn("as_of", F.explode(date_array(dates)))
