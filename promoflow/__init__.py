"""promoflow: nightly, budget-constrained promotion assignment.

Stage packages: ``spark_jobs`` (features), ``dbt_project`` (warehouse models),
``feature_repo`` (Feast), ``ml`` (models, policy, delivery). This package holds
what the stages share: settings, storage, ingest/validation, warehouse access,
feature-store access, publishing and the demo data generator.
"""
