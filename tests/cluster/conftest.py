"""Fixtures of the loopback production topology (cluster_topology.py)."""

from cluster_topology import production, s3, upload_landing  # noqa: F401
