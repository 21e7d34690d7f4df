"""The feature repository as Feast objects, built from promoflow's settings.

``promoflow.feature_store`` calls :func:`definitions` with a run's settings; the
module-level names below let the ``feast`` CLI (``feast -c feature_repo plan``)
see the same objects built from the environment.
"""

from __future__ import annotations

from data_sources import user_features_source
from entities import user
from feature_services import promo_response_service
from features import user_behaviour_view

from promoflow.settings import Settings


def definitions(settings: Settings) -> list:
    source = user_features_source(settings)
    user_behaviour = user_behaviour_view(source)
    return [user, source, user_behaviour, promo_response_service(user_behaviour)]


user_features_mart, user_behaviour, promo_response_v1 = definitions(Settings.from_env())[1:]
