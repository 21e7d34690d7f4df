"""Spark feature stage of promo_nightly.

Pure DataFrame -> DataFrame transformations: ``user_features`` (daily partial
aggregates, the per-user roll-up, item popularity), ``category_features`` (user x
category affinity), ``sequence_features`` (last 20 items per user) and
``item_features`` (co-viewed / co-bought neighbours). ``session`` builds the
SparkSession, ``nightly`` is the thin entry point that reads ``{lake}/clean`` and
writes ``{lake}/features`` (see docs/ARCHITECTURE.md and docs/spark_features.md).
"""
