"""One feature service per model: the exact feature set a model version was trained on."""

from __future__ import annotations

from feast import FeatureService, FeatureView


def promo_response_service(user_behaviour: FeatureView) -> FeatureService:
    return FeatureService(
        name="promo_response_v1",
        features=[user_behaviour],
        description="Features of the multi-treatment promo response model (ml.response_model).",
    )
