"""Customer segments for marketing: Spark MLlib KMeans on standardised RFM / behaviour features.

Each night clusters the users' features as of D into ``SEGMENTS`` groups. A segment keeps its
id across nights: tonight's centroids are matched to the previous night's (the permutation with
the least total distance, in tonight's standardised units), so "segment 2" means the same kind of
customer tomorrow. Names are read from the centroids ("frequent full-price", "lapsing
deal-seeker"): recency and order frequency against the users' medians decide the first word,
the share of discounted orders the second.

``segment_features`` / ``fit_segments`` / ``match_to_previous`` / ``segment_names`` are pure;
``build_segments`` chains them for the nightly job, which writes ``features/user_segments/as_of=D``
(user_id, segment_id, segment) and the centroids to ``features/_state/segments/as_of=D.json``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

SEGMENTS = 4
SEED = 7
# recency (days since last order; never ordered = the lookback + 1), frequency, monetary, discount affinity, activity
FEATURES = ["recency_days", "orders_90d", "spend_90d", "discount_order_share_90d", "events_30d"]
NEVER_ORDERED_RECENCY_DAYS = 91
DEAL_SEEKER_SHARE = 0.3  # a centroid whose orders are more than 30% discounted seeks deals


def segment_features(user_features: DataFrame) -> DataFrame:
    """RFM / behaviour columns per user, nulls resolved (no order: recency 91 days, counts 0)."""
    return user_features.select(
        "user_id",
        F.coalesce(F.col("days_since_last_order"), F.lit(NEVER_ORDERED_RECENCY_DAYS))
        .cast("double")
        .alias("recency_days"),
        F.coalesce(F.col("orders_90d"), F.lit(0)).cast("double").alias("orders_90d"),
        F.coalesce(F.col("spend_90d"), F.lit(0.0)).cast("double").alias("spend_90d"),
        F.coalesce(F.col("discount_order_share_90d"), F.lit(0.0)).cast("double").alias("discount_order_share_90d"),
        F.coalesce(F.col("events_30d"), F.lit(0)).cast("double").alias("events_30d"),
    )


def fit_segments(features: DataFrame, k: int = SEGMENTS, seed: int = SEED):
    """Standardise ``FEATURES`` and fit KMeans (2 <= k <= distinct rows); returns (pipeline, centroids in original units)."""
    from pyspark.ml import Pipeline
    from pyspark.ml.clustering import KMeans
    from pyspark.ml.feature import StandardScaler, VectorAssembler

    pipeline = Pipeline(
        stages=[
            VectorAssembler(inputCols=FEATURES, outputCol="_raw"),
            StandardScaler(inputCol="_raw", outputCol="_scaled", withMean=True, withStd=True),
            KMeans(featuresCol="_scaled", predictionCol="_cluster", k=k, seed=seed, maxIter=50),
        ]
    )
    model = pipeline.fit(features)
    scaler, kmeans = model.stages[1], model.stages[2]
    mean, std = scaler.mean.toArray(), scaler.std.toArray()
    centroids = np.array([c * np.where(std > 0, std, 1.0) + mean for c in kmeans.clusterCenters()])
    return model, centroids


def match_to_previous(centroids: np.ndarray, previous: np.ndarray | None, scale: np.ndarray) -> list[int]:
    """The stable id of each of tonight's clusters: the previous night's id it is matched to.

    All permutations are tried (k is small) and the one with the least total distance in
    standardised units wins; clusters beyond the previous night's count get new ids.
    """
    k = len(centroids)
    if previous is None or len(previous) == 0:
        return list(range(k))
    scale = np.where(scale > 0, scale, 1.0)
    distance = np.linalg.norm((centroids[:, None, :] - previous[None, :, :]) / scale, axis=2)
    ids = list(range(max(k, len(previous))))
    best = min(
        itertools.permutations(ids, k), key=lambda p: sum(distance[i, j] for i, j in enumerate(p) if j < len(previous))
    )
    return list(best)


def segment_names(centroids: np.ndarray, medians: Sequence[float]) -> list[str]:
    """Readable names from the centroids (original units) against the users' medians; duplicates numbered."""
    recency, frequency = FEATURES.index("recency_days"), FEATURES.index("orders_90d")
    discount = FEATURES.index("discount_order_share_90d")
    names = []
    for c in centroids:
        if c[frequency] < 0.5:
            activity = (
                "browsing" if c[FEATURES.index("events_30d")] > medians[FEATURES.index("events_30d")] else "inactive"
            )
        elif c[recency] > max(medians[recency], 30):
            activity = "lapsing"
        elif c[frequency] > medians[frequency]:
            activity = "frequent"
        else:
            activity = "occasional"
        price = "deal-seeker" if c[discount] > DEAL_SEEKER_SHARE else "full-price"
        names.append(f"{activity} {price}")
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name} {seen[name]}")
    return out


def build_segments(
    user_features: DataFrame, previous: dict | None, k: int = SEGMENTS, seed: int = SEED
) -> tuple[DataFrame, dict]:
    """Tonight's (user_id, segment_id, segment) and the centroid state the next night matches against."""
    features = segment_features(user_features).cache()
    distinct = (
        features.select(*FEATURES).distinct().count()
    )  # MLlib's KMeans fails asking for more clusters than points
    k = min(k, distinct)
    if distinct < 2:  # nothing to cluster: one segment
        names = segment_names(
            np.array([[row[f] for f in FEATURES] for row in features.collect()] or [[0.0] * len(FEATURES)]),
            [0.0] * len(FEATURES),
        )
        assigned = features.select("user_id", F.lit(0).alias("segment_id"), F.lit(names[0]).alias("segment"))
        return assigned, {
            "features": FEATURES,
            "centroids": (previous or {}).get("centroids", []),
            "names": {"0": names[0]},
        }
    model, centroids = fit_segments(features, k, seed)
    scale = np.array(model.stages[1].std.toArray())
    previous_centroids = np.array(previous["centroids"]) if previous else None
    ids = match_to_previous(centroids, previous_centroids, scale)
    medians = [q[0] if q else 0.0 for q in features.approxQuantile(FEATURES, [0.5], 0.0)]
    names = segment_names(centroids, medians)
    by_id = sorted(zip(ids, names, centroids.tolist()))
    spark = user_features.sparkSession
    mapping = spark.createDataFrame(
        [(i, cluster, name) for cluster, (i, name) in enumerate(zip(ids, names))],
        "segment_id int, _cluster int, segment string",
    )
    assigned = (
        model.transform(features)
        .select("user_id", F.col("_cluster").cast("int").alias("_cluster"))
        .join(F.broadcast(mapping), "_cluster")
        .select("user_id", "segment_id", "segment")
    )
    state = {
        "features": FEATURES,
        # indexed by segment id (gaps filled with the previous night's centroid, so ids stay put)
        "centroids": _centroids_by_id(by_id, previous_centroids),
        "names": {str(i): name for i, name, _ in by_id},
    }
    features.unpersist()
    return assigned, state


def _centroids_by_id(by_id: list[tuple[int, str, list[float]]], previous: np.ndarray | None) -> list[list[float]]:
    size = max([i for i, _, _ in by_id] + [len(previous) - 1 if previous is not None else -1]) + 1
    out = [list(previous[i]) if previous is not None and i < len(previous) else None for i in range(size)]
    for i, _, centroid in by_id:
        out[i] = centroid
    return [c if c is not None else [math.nan] * len(FEATURES) for c in out]
