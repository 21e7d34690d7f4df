"""Shared fixtures for tests of the ml package."""

from __future__ import annotations

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pandas as pd
import pytest
from ml_test_data import planted_exposures


@pytest.fixture(scope="session")
def planted_training() -> pd.DataFrame:
    return planted_exposures(8000, seed=1)
