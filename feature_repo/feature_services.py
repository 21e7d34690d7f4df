"""One feature service per model: the exact feature set a model version was trained on."""

from __future__ import annotations

from feast import FeatureService, FeatureView


def promo_response_service(user_behaviour: FeatureView) -> FeatureService:
    return FeatureService(
        name="promo_response_v1",
        features=[user_behaviour],
        description="Features of the multi-treatment promo response model (ml.models.tf_multihead).",
    )


def recommender_service(user_behaviour: FeatureView, item_popularity: FeatureView) -> FeatureService:
    # No sequence features yet: the Spark sequence output is another issue's work;
    # a recommender_v2 adds them rather than changing what v1 was trained on.
    return FeatureService(
        name="recommender_v1",
        features=[user_behaviour, item_popularity],
        description="Features of the featured-items recommender: user behaviour x item popularity (entity rows: user_id, item_id).",
    )
