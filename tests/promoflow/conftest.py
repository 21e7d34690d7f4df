from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from promoflow.settings import Settings


@pytest.fixture
def settings_for(tmp_path):
    """Settings whose every location is under a fresh tmp folder."""

    def make(raw: Path, **overrides) -> Settings:
        data = tmp_path / "data"
        env = {
            "PROMO_DATA_DIR": str(data),
            "PROMO_RAW_URI": str(raw),
            "PROMO_USER_KEY_SECRET": "test-secret",
        }
        return Settings.from_env(overrides=overrides, env=env)

    return make
