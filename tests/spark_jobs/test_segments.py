"""Customer segments: hand-checked assignment on a tiny set, names from centroids, ids stable across nights."""

from __future__ import annotations

import numpy as np

from spark_jobs import segments

COLUMNS = "user_id string, days_since_last_order int, orders_90d int, spend_90d double, discount_order_share_90d double, events_30d int"


def _night(spark, jitter: float = 0.0, reverse: bool = False):
    rows = [
        # frequent full-price buyers
        ("f1", 2, 10, 500.0 + jitter, 0.0, 40),
        ("f2", 3, 12, 620.0, 0.1, 45),
        ("f3", 1, 9, 480.0, 0.0, 38),
        # lapsing deal-seekers
        ("d1", 80, 1, 30.0, 1.0, 2),
        ("d2", 75, 2, 45.0 + jitter, 1.0, 3),
        ("d3", 85, 1, 25.0, 0.5, 1),
        # never ordered, browses a lot
        ("b1", None, 0, 0.0, None, 60),
        ("b2", None, 0, 0.0, None, 55 + int(jitter)),
    ]
    return spark.createDataFrame(list(reversed(rows)) if reverse else rows, COLUMNS)


def _assigned(df) -> dict[str, tuple[int, str]]:
    return {r.user_id: (r.segment_id, r.segment) for r in df.collect()}


def test_segment_features_resolve_missing_orders(spark):
    rows = {r.user_id: r for r in segments.segment_features(_night(spark)).collect()}
    assert rows["b1"].recency_days == 91 and rows["b1"].discount_order_share_90d == 0.0 and rows["b1"].orders_90d == 0
    assert rows["f1"].recency_days == 2 and rows["f1"].spend_90d == 500.0


def test_hand_checked_assignment_and_readable_names(spark):
    assigned, state = segments.build_segments(_night(spark), previous=None, k=3)
    got = _assigned(assigned)
    groups = {frozenset(u for u, (i, _) in got.items() if i == s) for s in {i for i, _ in got.values()}}
    assert groups == {frozenset({"f1", "f2", "f3"}), frozenset({"d1", "d2", "d3"}), frozenset({"b1", "b2"})}
    assert got["f1"][1] == "frequent full-price"
    assert got["d1"][1] == "lapsing deal-seeker"
    assert got["b1"][1] == "browsing full-price"
    assert sorted(state["names"].values()) == ["browsing full-price", "frequent full-price", "lapsing deal-seeker"]
    assert len(state["centroids"]) == 3 and len(state["centroids"][0]) == len(segments.FEATURES)


def test_segment_ids_stay_put_across_two_nights(spark):
    first, state = segments.build_segments(_night(spark), previous=None, k=3)
    # the next night: slightly different numbers, rows in another order, another KMeans seed
    second, _ = segments.build_segments(_night(spark, jitter=5.0, reverse=True), previous=state, k=3, seed=99)
    assert _assigned(second) == _assigned(first)


def test_matching_follows_the_previous_centroids_not_the_cluster_order():
    previous = np.array([[0.0, 0.0], [10.0, 10.0], [0.0, 10.0]])
    tonight = np.array([[0.5, 9.5], [9.0, 10.5], [0.2, -0.1]])  # the same three, shuffled and moved a little
    assert segments.match_to_previous(tonight, previous, scale=np.ones(2)) == [2, 1, 0]
    assert segments.match_to_previous(tonight, None, scale=np.ones(2)) == [0, 1, 2]
    # one more cluster than last night: it gets a new id
    assert segments.match_to_previous(np.vstack([tonight, [[50.0, 50.0]]]), previous, scale=np.ones(2)) == [2, 1, 0, 3]


def test_names_from_centroids_against_the_medians():
    f = segments.FEATURES
    medians = [0.0] * len(f)
    medians[f.index("recency_days")], medians[f.index("orders_90d")], medians[f.index("events_30d")] = 20, 3, 10

    def centroid(**values):
        c = np.zeros(len(f))
        for k, v in values.items():
            c[f.index(k)] = v
        return c

    names = segments.segment_names(
        np.array(
            [
                centroid(recency_days=5, orders_90d=8, discount_order_share_90d=0.1),
                centroid(recency_days=60, orders_90d=2, discount_order_share_90d=0.6),
                centroid(recency_days=10, orders_90d=2, discount_order_share_90d=0.0),
                centroid(recency_days=91, orders_90d=0, events_30d=2),
                centroid(recency_days=4, orders_90d=9, discount_order_share_90d=0.0),
            ]
        ),
        medians,
    )
    assert names == [
        "frequent full-price",
        "lapsing deal-seeker",
        "occasional full-price",
        "inactive full-price",
        "frequent full-price 2",
    ]
