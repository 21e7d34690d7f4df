"""Fixtures of the loopback production topology (cluster_topology.py).

One topology per test session: the ``production`` fixture is session-scoped, and every
cluster test carries ``xdist_group("cluster")``, so under xdist only ``--dist loadgroup``
keeps them on one worker. Any other distribution would bring up a topology per worker
(two Airflow installations, Spark clusters and Celery workers on a 2-core machine at once);
that is refused at collection.
"""

import pytest
from cluster_topology import production, s3, upload_landing  # noqa: F401


@pytest.hookimpl(trylast=True)  # after -m has deselected
def pytest_collection_modifyitems(config, items):
    dist = getattr(config.option, "dist", "no")
    numprocesses = getattr(config.option, "numprocesses", None)
    if numprocesses and dist not in ("no", "loadgroup") and any(item.get_closest_marker("cluster") for item in items):
        raise pytest.UsageError(
            f"the cluster tests bring up one production topology per session: run them without xdist "
            f"(make test-cluster) or with --dist loadgroup, not --dist {dist}"
        )
