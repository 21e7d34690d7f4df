"""Shared fixtures for the Spark feature stage: one small local session for all tests."""

from __future__ import annotations

import os
import time

import pytest

# Python converts naive datetimes with the process time zone; pin it to UTC so hand-built
# rows and collected rows mean the same instants as the Spark session (UTC).
os.environ["TZ"] = "UTC"
time.tzset()


# Test inputs are a few rows: compiling generated code and optimising hot JVM code cost
# more than they save, and the machine running tests may have 2 cores.
_FAST_SMALL_JOBS = {
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.codegen.factoryMode": "NO_CODEGEN",
    "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
}


@pytest.fixture(scope="session")
def spark():
    from spark_jobs.session import build_spark

    session = build_spark(
        master="local[1]",
        app_name="promoflow-tests",
        shuffle_partitions=2,
        driver_memory="1g",
        extra_conf=_FAST_SMALL_JOBS,
    )
    # Tiny inputs: skip adaptive re-planning and broadcast-size estimates, both cost time here.
    session.conf.set("spark.sql.adaptive.enabled", "false")
    yield session
    session.stop()


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "spark_cluster: starts a Spark standalone master and worker on 127.0.0.1 (part of the normal suite, < 2 min)",
    )
