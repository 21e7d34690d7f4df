"""Spark feature stage of promo_nightly.

``user_features`` holds the pure DataFrame -> DataFrame transformations,
``session`` builds the SparkSession, ``nightly`` is the thin entry point that
reads ``{lake}/clean`` and writes ``{lake}/features`` (see docs/ARCHITECTURE.md).
"""
