"""The feature repository as Feast objects, built from promoflow's settings.

``promoflow.feature_store`` calls :func:`definitions` with a run's settings; the
module-level names below let the ``feast`` CLI (``feast -c feature_repo plan``)
see the same objects built from the environment.
"""

from __future__ import annotations

from data_sources import item_features_source, user_features_source
from entities import item, user
from feature_services import promo_response_service, recommender_service
from features import item_popularity_view, user_behaviour_view

from promoflow.settings import Settings


def definitions(settings: Settings) -> list:
    user_source = user_features_source(settings)
    item_source = item_features_source(settings)
    user_behaviour = user_behaviour_view(user_source)
    item_popularity = item_popularity_view(item_source)
    return [
        user,
        item,
        user_source,
        item_source,
        user_behaviour,
        item_popularity,
        promo_response_service(user_behaviour),
        recommender_service(user_behaviour, item_popularity),
    ]


(
    user_features_mart,
    item_features_daily,
    user_behaviour,
    item_popularity,
    promo_response_v1,
    recommender_v1,
) = definitions(Settings.from_env())[2:]
