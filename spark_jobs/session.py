"""One place that builds the SparkSession every promoflow Spark job uses.

The settings here are the ones correctness depends on (UTC session time zone,
dynamic partition overwrite, Parquet timestamps other tools can read), so a job
must get them whether it starts the JVM itself or reuses a running session
(tests, notebooks, spark-submit).
"""

from __future__ import annotations

import os

from pyspark.sql import SparkSession

# Settings that can change on a running session; re-applied when one is reused.
_RUNTIME_CONF = {
    "spark.sql.session.timeZone": "UTC",
    # Re-running a night replaces the dt partitions it writes and leaves the others alone.
    "spark.sql.sources.partitionOverwriteMode": "dynamic",
    # INT96 (Spark's default) is legacy; DuckDB, pyarrow and Feast read micros as UTC timestamps.
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    # pyarrow writes pandas timestamps as nanoseconds, which Spark cannot read as timestamps;
    # read them as longs and convert (spark_jobs.nightly._as_utc_timestamp).
    "spark.sql.legacy.parquet.nanosAsLong": "true",
}


def submitted_master_or(default: str) -> str | None:
    """None (keep spark-submit's ``--master``) under spark-submit, else ``default``.

    spark-submit starts the Python driver with a gateway to its JVM
    (PYSPARK_GATEWAY_PORT) that already carries spark.master; setting a master on
    the builder would override it, so the same job runs unchanged on local[*] and
    under ``spark-submit --master spark://...``.
    """
    return None if os.environ.get("PYSPARK_GATEWAY_PORT") else default


def build_spark(
    master: str | None = "local[*]",
    app_name: str = "promoflow",
    shuffle_partitions: int = 8,
    driver_memory: str = "2g",
    extra_conf: dict[str, str] | None = None,
) -> SparkSession:
    """Return the active SparkSession (re-configured) or start one.

    ``master`` None keeps the master spark-submit was given (``submitted_master_or``).
    ``driver_memory`` only takes effect when this call starts the JVM; under
    spark-submit pass ``--driver-memory`` instead. ``extra_conf`` is applied as given
    (JVM options only when this call starts the JVM).
    """
    active = SparkSession.getActiveSession()
    if active is not None:
        for key, value in _RUNTIME_CONF.items():
            active.conf.set(key, value)
        active.conf.set("spark.sql.shuffle.partitions", str(shuffle_partitions))
        return active

    builder = SparkSession.builder if master is None else SparkSession.builder.master(master)
    builder = (
        builder.appName(app_name)
        .config("spark.driver.memory", driver_memory)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", str(shuffle_partitions))
        # No _SUCCESS markers: readers of the lake glob *.parquet, and as_of folders are
        # published by rename, which is the completeness signal.
        .config("spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs", "false")
    )
    for key, value in {**_RUNTIME_CONF, **(extra_conf or {})}.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    for key, value in _RUNTIME_CONF.items():  # getOrCreate may have returned a default session
        spark.conf.set(key, value)
    spark.conf.set("spark.sql.shuffle.partitions", str(shuffle_partitions))
    spark.sparkContext.setLogLevel("WARN")
    return spark
