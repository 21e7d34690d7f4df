"""Two-tower retrieval recommender (TensorFlow Recommenders): featured items per user.

In detail: docs/recommender.md, section "The model in detail (ml/recommender.py)".
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import tensorflow as tf
import tensorflow_recommenders as tfrs
import tf_keras as keras

import ml  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
from ml.models.tf_multihead import choose_strategy, enable_determinism

log = logging.getLogger(__name__)

MODEL_NAME = "recommender"  # its own name in the model store: recommender/{version}
USER_TOWER_FILE = "user_tower.keras"
ITEM_EMBEDDINGS_FILE = "item_embeddings.npy"
METADATA_FILE = "recommender.json"
MODEL_CARD_FILE = "model_card.md"
FORMAT_VERSION = 1

SEQUENCE_LENGTH = 20
SEQUENCE_SEPARATOR = ","
# Positive event types and the weight of a (user, day, item) example whose strongest event
# is that type. Views dominate the volume; purchases say most about what to feature.
EVENT_WEIGHTS: dict[str, float] = {"view": 1.0, "click": 1.5, "add_to_cart": 2.0, "purchase": 3.0}
RECALL_KS = (10, 50)
# Nightly choice of the featured items' source (choose_featured_source): the recommender
# replaces the category rule only when its held-out recall@10 is higher by at least this
# many standard errors of the paired per-user difference.
SELECTION_METRIC = "recall_at_10"
SELECTION_MIN_Z = 1.0
FEATURED_SOURCES = ("recommender", "category_rule")
_ITEM_KEY_COLUMNS = {"item_id", "category", "as_of", "brand"}
_USER_KEY_COLUMNS = {"user_id", "as_of", "event_timestamp"}


@dataclass(frozen=True)
class RecommenderConfig:
    """Architecture, data and optimiser settings (stored with the model)."""

    embedding_dim: int = 32
    item_id_embedding_dim: int = 8  # small: larger id embeddings overfit the demo shop (docs/recommender.md)
    category_embedding_dim: int = 8
    sequence_embedding_dim: int = 8
    user_hidden_units: int = 64
    learning_rate: float = 0.01
    batch_size: int = 512
    training_window_days: int = 90
    holdout_days: int = 1
    sequence_length: int = SEQUENCE_LENGTH
    logq_correction: bool = True
    event_weights: dict[str, float] = field(default_factory=lambda: dict(EVENT_WEIGHTS))
    score_batch_size: int = 8192
    # Training time is linear in pairs (~46k/s on 2 CPU cores): past this many, the most recent
    # are kept, so a night costs the same at 1M users as at 150k (docs/scale.md).
    max_training_pairs: int = 500_000


# ---------------------------------------------------------------------------- data helpers
def _utc(values: pd.Series) -> pd.Series:
    ts = pd.to_datetime(values)
    if ts.dt.tz is None:
        return ts.dt.tz_localize("UTC")
    return ts.dt.tz_convert("UTC")


def _day_start(day: dt.date | str | pd.Timestamp) -> pd.Timestamp:
    """UTC midnight of ``day``."""
    stamp = pd.Timestamp(day)
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    else:
        stamp = stamp.tz_convert("UTC")
    return stamp.normalize()


def _item_events(interactions: pd.DataFrame) -> pd.DataFrame:
    """Events with an item, deduplicated by event_id, UTC timestamps, sorted by user then time.

    Ties in event_ts keep the input order (a stable sort), then event_id when given.
    """
    missing = [c for c in ("user_id", "item_id", "event_ts", "event_type") if c not in interactions.columns]
    if missing:
        raise ValueError(
            f"interactions: missing columns {missing}; expected user_id, item_id, event_ts, event_type (+ weight, event_id optional)"
        )
    events = interactions.loc[interactions["item_id"].notna() & (interactions["item_id"].astype(str) != "")]
    if "event_id" in events.columns:
        events = events.drop_duplicates("event_id")
    columns = ["user_id", "item_id", "event_ts", "event_type"] + [
        c for c in ("weight", "event_id") if c in events.columns
    ]
    events = events[columns].copy()
    events["user_id"] = events["user_id"].astype(str)
    events["item_id"] = events["item_id"].astype(str)
    events["event_ts"] = _utc(events["event_ts"])
    events["_row"] = np.arange(len(events))
    sort_by = ["user_id", "event_ts"] + (["event_id"] if "event_id" in events.columns else []) + ["_row"]
    return events.sort_values(sort_by, kind="stable").reset_index(drop=True).drop(columns="_row")


def last_item_sequences(
    interactions: pd.DataFrame, as_of: dt.date | str, length: int = SEQUENCE_LENGTH
) -> pd.DataFrame:
    """``user_id, last_item_ids``: each user's last ``length`` item ids, oldest first.

    Uses only events with an ``item_id`` (any event type: view, click, add_to_cart,
    purchase) and ``event_ts`` strictly before ``as_of`` 00:00 UTC; ``event_id``
    duplicates count once; repeats of an item are kept. One row per user with at least
    one such event, sorted by user_id. The pandas reference for the Spark table
    ``{lake}/features/user_sequences/as_of=D``.
    """
    events = _item_events(interactions)
    events = events.loc[events["event_ts"] < _day_start(as_of)]
    last = events.groupby("user_id", sort=True).tail(length)
    sequences = last.groupby("user_id", sort=True)["item_id"].agg(SEQUENCE_SEPARATOR.join)
    return sequences.rename("last_item_ids").reset_index()


def _split_sequences(last_item_ids: pd.Series) -> list[list[str]]:
    return [[] if not isinstance(s, str) or s == "" else s.split(SEQUENCE_SEPARATOR) for s in last_item_ids]


def training_pairs(
    interactions: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp, event_weights: dict[str, float] = EVENT_WEIGHTS
) -> pd.DataFrame:
    """Distinct positive (user_id, day, item_id) in ``[start, end)`` with ``weight``.

    weight = the strongest event's weight (``event_weights``) x the max ``weight`` column
    of those events when the interactions carry one.
    """
    events = _item_events(interactions)
    events = events.loc[
        (events["event_ts"] >= start) & (events["event_ts"] < end) & events["event_type"].isin(list(event_weights))
    ]
    weight = events["event_type"].map(event_weights).astype(float)
    if "weight" in events.columns:
        weight = weight * pd.to_numeric(events["weight"], errors="coerce").fillna(1.0)
    pairs = events.assign(day=events["event_ts"].dt.normalize(), weight=weight)
    pairs = pairs.groupby(["user_id", "day", "item_id"], sort=True, as_index=False)["weight"].max()
    return pairs


def most_recent_pairs(pairs: pd.DataFrame, limit: int) -> pd.DataFrame:
    """At most ``limit`` of ``pairs``: the latest days whole, the oldest kept day's pairs chosen by a
    stable hash of (user, item); in the (user_id, day, item_id) order of :func:`training_pairs`."""
    if len(pairs) <= limit:
        return pairs
    key = pd.util.hash_pandas_object(pairs[["user_id", "item_id"]].astype(str), index=False).to_numpy()
    order = np.lexsort((key, -_microseconds(pairs["day"])))
    return pairs.iloc[np.sort(order[:limit])].reset_index(drop=True)


def _microseconds(values: pd.Series | np.ndarray) -> np.ndarray:
    """int64 microseconds since the epoch of UTC timestamps (tz-aware or naive UTC)."""
    ts = pd.to_datetime(pd.Series(values))
    if ts.dt.tz is not None:
        ts = ts.dt.tz_convert("UTC").dt.tz_localize(None)
    return ts.to_numpy("datetime64[us]").astype(np.int64)


def _sequences_at_day_starts(
    events: pd.DataFrame, queries: pd.DataFrame, item_index: dict[str, int], length: int
) -> np.ndarray:
    """[n_queries, length] int32 item codes (0 = padding, i + 1 = item i; padding first,
    newest item last) of each query user's last items strictly before ``queries.day``.

    ``events`` are sorted by user then time (``_item_events``). Items unknown to the corpus
    become padding. Vectorised: one searchsorted over a (user rank, time) key, then a
    sliding window over the concatenated item codes.
    """
    n = len(queries)
    if n == 0 or events.empty:
        return np.zeros((n, length), dtype=np.int32)
    codes = events["item_id"].map(item_index).fillna(-1).to_numpy(np.int64) + 1  # 0 = unknown item
    users = events["user_id"].to_numpy().astype(str)
    user_names, user_first = np.unique(users, return_index=True)  # users are contiguous and sorted
    user_end = np.append(user_first[1:], len(users))
    q_user = queries["user_id"].to_numpy().astype(str)
    rank = np.minimum(np.searchsorted(user_names, q_user), len(user_names) - 1)
    known = user_names[rank] == q_user

    ts = _microseconds(events["event_ts"])
    q_ts = _microseconds(queries["day"])
    t0 = min(ts.min(), q_ts.min())
    span = int(max(ts.max(), q_ts.max()) - t0 + 1)
    event_key = np.searchsorted(user_names, users).astype(np.int64) * span + (ts - t0)
    query_key = rank.astype(np.int64) * span + (q_ts - t0)
    start = user_first[rank]
    cutoff = np.clip(
        np.searchsorted(event_key, query_key, side="left"), start, user_end[rank]
    )  # first event at/after the day

    padded = np.concatenate([np.zeros(length, dtype=np.int64), codes])
    windows = np.lib.stride_tricks.sliding_window_view(padded, length)  # windows[c] = codes[c - length : c]
    sequences = windows[cutoff].copy()
    position = cutoff[:, None] - length + np.arange(length)[None, :]
    sequences[(position < start[:, None]) | ~known[:, None]] = 0  # another user's events, or none
    return _left_align_padding(sequences.astype(np.int32))


def _left_align_padding(sequences: np.ndarray) -> np.ndarray:
    """Move padding (0) to the front of each row, keeping the order of the items."""
    order = np.argsort(sequences != 0, axis=1, kind="stable")
    return np.take_along_axis(sequences, order, axis=1)


def _encode_sequences(last_item_ids: Sequence[Any], item_index: dict[str, int], length: int) -> np.ndarray:
    """[n, length] int32 codes of comma-separated sequences (newest last, padding first)."""
    out = np.zeros((len(last_item_ids), length), dtype=np.int32)
    for row, items in enumerate(_split_sequences(pd.Series(list(last_item_ids), dtype=object))):
        codes = [item_index[i] + 1 for i in items[-length:] if i in item_index]
        if codes:
            out[row, length - len(codes) :] = codes
    return out


def _signed_log1p(values: np.ndarray) -> np.ndarray:
    return (np.sign(values) * np.log1p(np.abs(values))).astype(np.float32)


def user_numeric_columns(user_features: pd.DataFrame) -> list[str]:
    """Numeric columns of ``user_features`` the user tower uses (ids, dates and strings excluded)."""
    return [
        c
        for c in user_features.columns
        if c not in _USER_KEY_COLUMNS
        and pd.api.types.is_numeric_dtype(user_features[c])
        and not pd.api.types.is_bool_dtype(user_features[c])
    ]


def _user_numeric_matrix(
    user_ids: Sequence[str], user_features: pd.DataFrame | None, columns: list[str], fill: np.ndarray
) -> np.ndarray:
    """[n, F] float32 signed_log1p numerics per user id; missing users/values get ``fill``."""
    n = len(user_ids)
    if not columns:
        return np.zeros((n, 0), dtype=np.float32)
    matrix = np.tile(np.asarray(fill, dtype=np.float32), (n, 1))
    if user_features is None or user_features.empty:
        return matrix
    missing = [c for c in columns if c not in user_features.columns]
    if missing:
        raise ValueError(
            f"user_features: missing columns {missing} that the recommender was trained with; pass the same user_features columns"
        )
    table = (
        user_features.assign(_uid=user_features["user_id"].astype(str))
        .drop_duplicates("_uid", keep="last")
        .set_index("_uid")
    )
    aligned = (
        table.reindex(pd.Index([str(u) for u in user_ids]))[columns]
        .apply(pd.to_numeric, errors="coerce")
        .to_numpy(np.float64)
    )
    transformed = _signed_log1p(np.nan_to_num(aligned, nan=0.0, posinf=0.0, neginf=0.0))
    present = np.isfinite(aligned)
    matrix[present] = transformed[present]
    return matrix


def _items_table(items: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Items deduplicated by item_id (sorted), and the numeric feature columns beyond price."""
    missing = [c for c in ("item_id", "category", "price") if c not in items.columns]
    if missing:
        raise ValueError(
            f"items: missing columns {missing}; expected item_id, category, price (+ numeric item features)"
        )
    table = items.drop_duplicates("item_id", keep="last").copy()
    table["item_id"] = table["item_id"].astype(str)
    table["category"] = table["category"].fillna("unknown").astype(str)
    table = table.sort_values("item_id", kind="stable").reset_index(drop=True)
    numeric = [
        c
        for c in table.columns
        if c not in _ITEM_KEY_COLUMNS
        and c != "price"
        and pd.api.types.is_numeric_dtype(table[c])
        and not pd.api.types.is_bool_dtype(table[c])
    ]
    return table, numeric


# ---------------------------------------------------------------------------- model
@keras.saving.register_keras_serializable(package="promoflow")
class MaskedMeanPooling(keras.layers.Layer):
    """Mean of ``embeddings[n, L, e]`` over the positions where ``codes[n, L] != 0``; zeros
    for a row without any item (unlike GlobalAveragePooling1D, which gives NaN there)."""

    def call(self, inputs):
        embeddings, codes = inputs
        mask = tf.cast(tf.not_equal(codes, 0), embeddings.dtype)[:, :, None]
        total = tf.reduce_sum(embeddings * mask, axis=1)
        count = tf.reduce_sum(mask, axis=1)
        return total / tf.maximum(count, tf.ones_like(count))


def build_user_tower(
    n_numeric: int,
    numeric_mean: np.ndarray,
    numeric_variance: np.ndarray,
    n_items: int,
    config: RecommenderConfig,
    item_attributes: np.ndarray | None = None,
) -> keras.Model:
    """{numeric [n,F] float32 (signed_log1p), sequence [n,L] int32 codes} -> [n, embedding_dim] float32.

    ``item_attributes`` [n_items, A] (one-hot category + normalised log price): a frozen
    lookup whose masked mean over the sequence gives the user's category shares and price
    level — few parameters, so they generalise from little data where the per-item
    sequence embeddings cannot yet.
    """
    numeric = keras.Input(shape=(n_numeric,), dtype="float32", name="numeric")
    sequence = keras.Input(shape=(config.sequence_length,), dtype="int32", name="sequence")
    parts = []
    if n_numeric:
        parts.append(
            keras.layers.Normalization(
                axis=-1,
                mean=np.asarray(numeric_mean).tolist(),
                variance=np.asarray(numeric_variance).tolist(),
                name="numeric_normalisation",
            )(numeric)
        )
    sequence_embeddings = keras.layers.Embedding(
        n_items + 1, config.sequence_embedding_dim, name="sequence_item_embedding"
    )(sequence)
    parts.append(MaskedMeanPooling(name="sequence_mean")([sequence_embeddings, sequence]))
    if item_attributes is not None:
        table = np.vstack([np.zeros((1, item_attributes.shape[1])), item_attributes]).astype(np.float32)
        attributes = keras.layers.Embedding(
            n_items + 1,
            table.shape[1],
            embeddings_initializer=keras.initializers.Constant(table),
            trainable=False,
            name="sequence_item_attributes",
        )(sequence)
        parts.append(MaskedMeanPooling(name="sequence_attribute_mean")([attributes, sequence]))
    x = keras.layers.Concatenate(name="user_input")(parts) if len(parts) > 1 else parts[0]
    x = keras.layers.Dense(config.user_hidden_units, activation="relu", name="user_hidden")(x)
    output = keras.layers.Dense(config.embedding_dim, dtype="float32", name="user_embedding")(x)
    return keras.Model(inputs={"numeric": numeric, "sequence": sequence}, outputs=output, name="user_tower")


def build_item_tower(
    item_category_codes: np.ndarray, n_categories: int, item_numeric: np.ndarray, config: RecommenderConfig
) -> keras.Model:
    """item index [n] int32 -> [n, embedding_dim] float32; category and (normalised) numeric
    item features are constant tables inside the tower."""
    index = keras.Input(shape=(), dtype="int32", name="item_index")
    n_items = len(item_category_codes)
    id_embedding = keras.layers.Embedding(n_items, config.item_id_embedding_dim, name="item_id_embedding")(index)
    category_table = tf.constant(np.asarray(item_category_codes, dtype=np.int32))
    numeric_table = tf.constant(np.asarray(item_numeric, dtype=np.float32))
    category = keras.layers.Lambda(lambda i: tf.gather(category_table, i), name="item_category")(index)
    category_embedding = keras.layers.Embedding(n_categories, config.category_embedding_dim, name="category_embedding")(
        category
    )
    numeric = keras.layers.Lambda(lambda i: tf.gather(numeric_table, i), name="item_numeric")(index)
    x = keras.layers.Concatenate(name="item_input")(
        [id_embedding, category_embedding, keras.layers.Activation("linear", name="item_numeric_cast")(numeric)]
    )
    output = keras.layers.Dense(config.embedding_dim, dtype="float32", name="item_embedding")(x)
    return keras.Model(inputs=index, outputs=output, name="item_tower")


class TwoTowerModel(tfrs.Model):
    """User tower x item tower with an in-batch softmax retrieval task.

    ``train_step`` goes through ``optimizer.minimize`` (not tfrs' ``apply_gradients``) so
    a LossScaleOptimizer scales the loss under mixed precision.
    """

    def __init__(
        self, user_tower: keras.Model, item_tower: keras.Model, item_log_probability: np.ndarray | None, **kwargs: Any
    ):
        super().__init__(**kwargs)
        self.user_tower = user_tower
        self.item_tower = item_tower
        self._item_log_probability = (
            None if item_log_probability is None else tf.constant(np.asarray(item_log_probability, np.float32))
        )
        # The task in float32 under mixed precision: a mixed_float16 layer casts its first
        # input (the query embeddings) to float16, and the score matmul then meets float32
        # candidates; scores and the softmax loss belong in float32 anyway.
        previous_policy = keras.mixed_precision.global_policy()
        keras.mixed_precision.set_global_policy("float32")
        try:
            self.task = tfrs.tasks.Retrieval(remove_accidental_hits=True)
        finally:
            keras.mixed_precision.set_global_policy(previous_policy)

    def compute_loss(self, features: dict, training: bool = False) -> tf.Tensor:
        user_embeddings = self.user_tower(
            {"numeric": features["numeric"], "sequence": features["sequence"]}, training=training
        )
        item_index = tf.cast(features["item_index"], tf.int32)
        item_embeddings = self.item_tower(item_index, training=training)
        sampling_probability = None
        if self._item_log_probability is not None:
            sampling_probability = tf.exp(tf.gather(self._item_log_probability, item_index))
        return self.task(
            user_embeddings,
            item_embeddings,
            sample_weight=features.get("weight"),
            candidate_sampling_probability=sampling_probability,
            candidate_ids=item_index,
            compute_metrics=not training,
        )

    def train_step(self, inputs):
        with tf.GradientTape() as tape:
            loss = self.compute_loss(inputs, training=True)
            regularization_loss = (
                tf.reduce_sum([tf.reduce_sum(x) for x in self.losses]) if self.losses else tf.constant(0.0)
            )
            total_loss = loss + regularization_loss
        self.optimizer.minimize(total_loss, self.trainable_variables, tape=tape)
        metrics = {metric.name: metric.result() for metric in self.metrics}
        metrics["loss"] = loss
        return metrics


# ---------------------------------------------------------------------------- the scoring object
class Recommender:
    """What scoring needs: the user tower, the item corpus and its embedding matrix."""

    def __init__(self, user_tower: keras.Model, item_embeddings: np.ndarray, metadata: dict):
        self.user_tower = user_tower
        self.item_embeddings = np.asarray(item_embeddings, dtype=np.float32)
        self.metadata = metadata
        self.item_ids = np.asarray(metadata["items"]["item_id"], dtype=object)
        self.item_categories = np.asarray(metadata["items"]["category"], dtype=object)
        self._item_index = {item: i for i, item in enumerate(self.item_ids)}

    @property
    def metrics(self) -> dict:
        return self.metadata.get("metrics", {})

    @property
    def user_numeric_columns(self) -> list[str]:
        return list(self.metadata["user_numeric_columns"])

    def user_embeddings(
        self, user_ids: Sequence[str], user_features: pd.DataFrame | None, user_sequences: pd.DataFrame | None
    ) -> np.ndarray:
        """[n, embedding_dim] float32 for ``user_ids`` (features/sequences looked up by user_id)."""
        user_ids = [str(u) for u in user_ids]
        numeric = _user_numeric_matrix(
            user_ids,
            user_features,
            self.user_numeric_columns,
            np.asarray(self.metadata["user_numeric_mean"], np.float32),
        )
        if user_sequences is not None and len(user_sequences):
            lookup = (
                user_sequences.assign(user_id=user_sequences["user_id"].astype(str))
                .drop_duplicates("user_id", keep="last")
                .set_index("user_id")["last_item_ids"]
            )
            raw = lookup.reindex(user_ids).tolist()
        else:
            raw = [None] * len(user_ids)
        sequences = _encode_sequences(raw, self._item_index, int(self.metadata["config"]["sequence_length"]))
        return self._embed(numeric, sequences)

    def _embed(self, numeric: np.ndarray, sequences: np.ndarray) -> np.ndarray:
        if len(numeric) == 0:
            return np.zeros((0, self.item_embeddings.shape[1]), dtype=np.float32)
        dataset = tf.data.Dataset.from_tensor_slices({"numeric": numeric, "sequence": sequences}).batch(
            int(self.metadata["config"]["score_batch_size"])
        )
        return np.asarray(self.user_tower.predict(dataset, verbose=0), dtype=np.float32)

    def save(self, local_dir: str | Path) -> Path:
        """Write user_tower.keras, item_embeddings.npy, recommender.json and model_card.md."""
        from ml.model_card import render_model_card

        local_dir = Path(local_dir)
        local_dir.mkdir(parents=True, exist_ok=True)
        self.user_tower.save(local_dir / USER_TOWER_FILE)
        np.save(local_dir / ITEM_EMBEDDINGS_FILE, self.item_embeddings, allow_pickle=False)
        (local_dir / METADATA_FILE).write_text(json.dumps(self.metadata, indent=2, sort_keys=True))
        (local_dir / MODEL_CARD_FILE).write_text(render_model_card(recommender_metrics=self.metrics))
        return local_dir

    @classmethod
    def load(cls, local_dir: str | Path) -> Recommender:
        local_dir = Path(local_dir)
        for name in (USER_TOWER_FILE, ITEM_EMBEDDINGS_FILE, METADATA_FILE):
            if not (local_dir / name).exists():
                raise FileNotFoundError(
                    f"{local_dir / name}: missing; a recommender folder holds {USER_TOWER_FILE}, {ITEM_EMBEDDINGS_FILE} and {METADATA_FILE}"
                )
        metadata = json.loads((local_dir / METADATA_FILE).read_text())
        if metadata.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{local_dir / METADATA_FILE}: format_version {metadata.get('format_version')!r}; this code reads {FORMAT_VERSION}"
            )
        user_tower = keras.models.load_model(local_dir / USER_TOWER_FILE, compile=False)
        item_embeddings = np.load(local_dir / ITEM_EMBEDDINGS_FILE, allow_pickle=False)
        return cls(user_tower, item_embeddings, metadata)


# ---------------------------------------------------------------------------- scoring
def _category_masks(
    model: Recommender, categories: Sequence[str | None] | str | None, n_users: int
) -> np.ndarray | None:
    """[n_users] int category code per user (-1 = no limit, -2 = a category with no items)."""
    if categories is None:
        return None
    if isinstance(categories, str):
        categories = [categories] * n_users
    if len(categories) != n_users:
        raise ValueError(
            f"categories: {len(categories)} entries for {n_users} users; give one category (or None) per user, or one for all"
        )
    vocabulary = {c: i for i, c in enumerate(sorted(set(model.item_categories)))}
    codes = np.array(
        [
            -1 if (c is None or (isinstance(c, float) and np.isnan(c)) or c == "") else vocabulary.get(str(c), -2)
            for c in categories
        ]
    )
    return codes


def _rank(
    model: Recommender, user_embeddings: np.ndarray, k: int, category_codes: np.ndarray | None, batch_size: int = 4096
) -> list[list[str]]:
    """Brute-force top-k item ids per user row: scores = U @ V.T; items outside the user's
    category limit never appear (a user gets fewer than k when the category has fewer)."""
    k = int(k)
    if k < 1:
        raise ValueError(f"k={k}: expected at least 1")
    n_items = len(model.item_ids)
    vocabulary = {c: i for i, c in enumerate(sorted(set(model.item_categories)))}
    item_codes = np.array([vocabulary[c] for c in model.item_categories])
    k_eff = min(k, n_items)
    results: list[list[str]] = []
    for lo in range(0, len(user_embeddings), batch_size):
        scores = user_embeddings[lo : lo + batch_size] @ model.item_embeddings.T
        if category_codes is not None:
            codes = category_codes[lo : lo + batch_size]
            allowed = (codes[:, None] == -1) | (item_codes[None, :] == codes[:, None])
            scores = np.where(allowed, scores, -np.inf)
        top = (
            np.argpartition(-scores, k_eff - 1, axis=1)[:, :k_eff]
            if k_eff < n_items
            else np.tile(np.arange(n_items), (len(scores), 1))
        )
        top_scores = np.take_along_axis(scores, top, axis=1)
        # Highest score first; ties by item position (item ids are sorted) for stable output.
        order = np.lexsort((top, -top_scores), axis=1)
        top = np.take_along_axis(top, order, axis=1)
        top_scores = np.take_along_axis(top_scores, order, axis=1)
        for row_items, row_scores in zip(top, top_scores):
            results.append([model.item_ids[i] for i, s in zip(row_items, row_scores) if np.isfinite(s)])
    return results


def top_k_items(
    model: Recommender,
    user_ids: Sequence[str],
    user_features: pd.DataFrame | None,
    user_sequences: pd.DataFrame | None,
    k: int = 10,
    category: str | Sequence[str | None] | None = None,
) -> list[list[str]]:
    """Top-``k`` item ids per user, best first (one list per entry of ``user_ids``).

    ``category``: None (whole corpus), one category for every user, or one per user (None
    = no limit for that user). A limited user gets items of that category only (fewer
    than k if it has fewer; none for a category the corpus does not have). Nothing else is
    excluded. Users missing from ``user_features`` / ``user_sequences`` score with mean
    features / an empty history.
    """
    embeddings = model.user_embeddings(user_ids, user_features, user_sequences)
    return _rank(model, embeddings, k, _category_masks(model, category, len(embeddings)))


def featured_items(
    model: Recommender,
    user_ids: Sequence[str],
    user_features: pd.DataFrame | None,
    user_sequences: pd.DataFrame | None,
    categories: Sequence[str | None] | str | None = None,
    k: int = 3,
) -> list[str]:
    """Comma-separated top-``k`` item ids per user (the ``featured_item_ids`` format of the
    assign step); ``categories`` as in :func:`top_k_items` (an offer's category, or None)."""
    return [
        SEQUENCE_SEPARATOR.join(items)
        for items in top_k_items(model, user_ids, user_features, user_sequences, k, categories)
    ]


# ---------------------------------------------------------------------------- evaluation
def recall_metrics(
    recommended: Sequence[Sequence[str]], held_out: Sequence[set[str]], ks: Sequence[int] = RECALL_KS
) -> dict[str, float]:
    """recall_at_k (mean over users of |top-k ∩ held-out| / |held-out|) and hit_rate_at_k."""
    out: dict[str, float] = {}
    for k in ks:
        recalls, hits = [], []
        for items, truth in zip(recommended, held_out):
            found = len(set(items[:k]) & truth)
            recalls.append(found / len(truth))
            hits.append(float(found > 0))
        out[f"recall_at_{k}"] = float(np.mean(recalls)) if recalls else float("nan")
        out[f"hit_rate_at_{k}"] = float(np.mean(hits)) if hits else float("nan")
    return out


def per_user_recall(recommended: Sequence[Sequence[str]], held_out: Sequence[set[str]], k: int) -> np.ndarray:
    """|top-k ∩ held-out| / |held-out| per user (the terms whose mean is recall_at_k)."""
    return np.array(
        [len(set(items[:k]) & truth) / len(truth) for items, truth in zip(recommended, held_out)], dtype=np.float64
    )


def paired_recall_difference(
    recommended: Sequence[Sequence[str]],
    baseline: Sequence[Sequence[str]],
    held_out: Sequence[set[str]],
    ks: Sequence[int] = RECALL_KS,
) -> dict[str, float]:
    """Mean per-user recall@k difference (model - baseline) and its standard error, per k."""
    out: dict[str, float] = {}
    for k in ks:
        difference = per_user_recall(recommended, held_out, k) - per_user_recall(baseline, held_out, k)
        out[f"recall_at_{k}_difference"] = float(difference.mean()) if len(difference) else float("nan")
        out[f"recall_at_{k}_difference_stderr"] = (
            float(difference.std(ddof=1) / np.sqrt(len(difference))) if len(difference) > 1 else float("nan")
        )
    return out


def choose_featured_source(metrics: dict, min_z: float = SELECTION_MIN_Z) -> dict[str, Any]:
    """The night's source of ``featured_item_ids``: ``recommender`` when its held-out
    ``SELECTION_METRIC`` beats the category rule (top-category popularity, what
    ``promoflow.decisions._top_items`` features) by ``min_z`` paired standard errors, else
    ``category_rule``. Returns the source, the figures it was decided on and a reason."""
    versus = metrics.get("versus_category_popularity") or {}
    difference = versus.get(f"{SELECTION_METRIC}_difference")
    stderr = versus.get(f"{SELECTION_METRIC}_difference_stderr")
    decided = {
        "metric": SELECTION_METRIC,
        "recommender": (metrics.get("model") or {}).get(SELECTION_METRIC),
        "category_rule": (metrics.get("category_popularity") or {}).get(SELECTION_METRIC),
        "popularity": (metrics.get("popularity") or {}).get(SELECTION_METRIC),
        "difference": difference,
        "difference_stderr": stderr,
        "min_z": min_z,
        "n_users_evaluated": metrics.get("n_users_evaluated", 0),
    }
    if difference is None or stderr is None or not np.isfinite(difference) or not np.isfinite(stderr):
        return {
            **decided,
            "source": "category_rule",
            "reason": "no held-out evaluation (too few users with held-out items): the category rule stays",
        }
    z = difference / stderr if stderr > 0 else (np.inf if difference > 0 else -np.inf)
    decided["z"] = float(z)
    if difference > 0 and z >= min_z:
        return {
            **decided,
            "source": "recommender",
            "reason": f"held-out {SELECTION_METRIC} {decided['recommender']:.3f} beats the category rule's {decided['category_rule']:.3f} by {z:.1f} se",
        }
    return {
        **decided,
        "source": "category_rule",
        "reason": f"held-out {SELECTION_METRIC} {decided['recommender']:.3f} vs the category rule's {decided['category_rule']:.3f} ({z:+.1f} se, needs +{min_z:g}): the rule stays",
    }


def popularity_ranking(pairs: pd.DataFrame) -> list[str]:
    """Item ids by number of training pairs, most first, ties by item_id."""
    counts = pairs.groupby("item_id").size().rename("n").reset_index()
    return counts.sort_values(["n", "item_id"], ascending=[False, True], kind="stable")["item_id"].tolist()


def category_popularity_rankings(
    pairs: pd.DataFrame, users: Sequence[str], item_categories: dict[str, str], k: int
) -> list[list[str]]:
    """Per user: the most popular items of the user's top category (most training pairs of
    that user), then the overall most popular items — what the assign step featured before
    this model (``top_category`` x ``popularity_rank_in_category``). Users without
    training pairs get the overall ranking."""
    overall = popularity_ranking(pairs)
    by_category: dict[str, list[str]] = {}
    for item in overall:
        by_category.setdefault(item_categories.get(item, "unknown"), []).append(item)
    user_category = (
        pairs.assign(category=pairs["item_id"].map(item_categories))
        .groupby(["user_id", "category"])
        .size()
        .rename("n")
        .reset_index()
    )
    user_category = user_category.sort_values(
        ["user_id", "n", "category"], ascending=[True, False, True], kind="stable"
    ).drop_duplicates("user_id")
    top = dict(zip(user_category["user_id"], user_category["category"]))
    out = []
    for user in users:
        first = by_category.get(top.get(user), [])[:k]
        chosen = set(first)
        out.append(first + [i for i in overall if i not in chosen][: k - len(first)])
    return out


# ---------------------------------------------------------------------------- training
def _dataset(inputs: dict[str, np.ndarray], batch_size: int, seed: int, shuffle: bool) -> tf.data.Dataset:
    dataset = tf.data.Dataset.from_tensor_slices(inputs)
    if shuffle:
        dataset = dataset.shuffle(len(next(iter(inputs.values()))), seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _check_sequences_agree(user_sequences: pd.DataFrame, reference: pd.DataFrame) -> float:
    """Share of users whose given last_item_ids differ from the pandas reference."""
    merged = reference.merge(
        user_sequences[["user_id", "last_item_ids"]].astype({"user_id": str}),
        on="user_id",
        how="left",
        suffixes=("", "_given"),
    )
    differ = merged["last_item_ids"] != merged["last_item_ids_given"].fillna("")
    return float(differ.mean()) if len(merged) else 0.0


def _item_corpus(items: pd.DataFrame):
    """The fixed item corpus: table, numeric columns, categories, category codes, standardised numerics."""
    item_table, item_numeric_columns = _items_table(items)
    categories = sorted(set(item_table["category"]))
    category_codes = item_table["category"].map({c: i for i, c in enumerate(categories)}).to_numpy(np.int32)
    item_numeric_raw = np.column_stack(
        [np.log1p(pd.to_numeric(item_table["price"], errors="coerce").fillna(0.0).clip(lower=0).to_numpy(np.float64))]
        + [
            _signed_log1p(pd.to_numeric(item_table[c], errors="coerce").fillna(0.0).to_numpy(np.float64))
            for c in item_numeric_columns
        ]
    )
    item_numeric = (
        (item_numeric_raw - item_numeric_raw.mean(axis=0)) / np.maximum(item_numeric_raw.std(axis=0), 1e-6)
    ).astype(np.float32)
    return item_table, item_numeric_columns, categories, category_codes, item_numeric


def _user_numeric_stats(user_features: pd.DataFrame | None) -> tuple[list[str], np.ndarray, np.ndarray]:
    """The user tower's numeric columns with their mean and variance over the users in ``user_features``."""
    numeric_columns = user_numeric_columns(user_features) if user_features is not None else []
    user_ids_in_features = (
        user_features["user_id"].astype(str).unique()
        if user_features is not None and len(user_features)
        else np.array([], dtype=str)
    )
    raw_feature_matrix = _user_numeric_matrix(
        list(user_ids_in_features), user_features, numeric_columns, np.zeros(len(numeric_columns), np.float32)
    )
    numeric_mean = (
        raw_feature_matrix.mean(axis=0) if len(raw_feature_matrix) else np.zeros(len(numeric_columns), np.float32)
    )
    numeric_variance = (
        np.maximum(raw_feature_matrix.var(axis=0), 1e-6)
        if len(raw_feature_matrix)
        else np.ones(len(numeric_columns), np.float32)
    )
    return numeric_columns, numeric_mean, numeric_variance


def train_recommender(
    interactions: pd.DataFrame,
    user_features: pd.DataFrame | None,
    user_sequences: pd.DataFrame | None,
    items: pd.DataFrame,
    as_of: dt.date | str,
    seed: int = 7,
    epochs: int = 5,
    *,
    deterministic: bool = False,
    config: RecommenderConfig = RecommenderConfig(),
) -> tuple[Recommender, dict]:
    """Train the two-tower model on interactions before ``as_of`` (a run date D: data < D 00:00 UTC).

    Returns ``(model, metrics)``; metrics hold the data window, counts, recall@10/@50 and
    hit rates of the model and the popularity baseline on the held-out last day, training
    examples/s, device, strategy and seed (also stored in ``model.metadata["metrics"]``).

    ``user_features``: as of the held-out day for an evaluation without leakage (the
    numerics only count events; as of D they include the held-out day's counts, a small
    leak). ``user_sequences`` (as of ``as_of``, e.g. the Spark table) are not used for
    training — every example's sequence is rebuilt point-in-time from ``interactions`` —
    but are compared with the pandas reference and a disagreement is logged.
    """
    if deterministic:
        enable_determinism(seed)
    else:
        keras.utils.set_random_seed(seed)
    started_all = time.perf_counter()
    as_of_start = _day_start(as_of)
    holdout_start = as_of_start - pd.Timedelta(days=config.holdout_days)
    window_start = holdout_start - pd.Timedelta(days=config.training_window_days)

    item_table, item_numeric_columns, categories, category_codes, item_numeric = _item_corpus(items)
    item_ids = item_table["item_id"].tolist()
    item_index = {item: i for i, item in enumerate(item_ids)}
    n_items = len(item_ids)

    events = _item_events(interactions)
    events = events.loc[events["event_ts"] < as_of_start].reset_index(drop=True)
    pairs = training_pairs(events, window_start, holdout_start, config.event_weights)
    unknown_items = ~pairs["item_id"].isin(item_index)
    if unknown_items.any():
        log.warning("recommender: %d training pairs name items missing from items; dropped", int(unknown_items.sum()))
        pairs = pairs.loc[~unknown_items].reset_index(drop=True)
    if pairs.empty:
        raise ValueError(
            f"interactions: no positive {sorted(config.event_weights)} events with a known item_id in "
            f"[{window_start.date()}, {holdout_start.date()}); the recommender needs training pairs before the held-out day"
        )
    window_pairs = pairs  # the baselines' popularity counts every pair of the window, as the category rule does
    pairs = most_recent_pairs(pairs, config.max_training_pairs)
    pair_items = pairs["item_id"].map(item_index).to_numpy(np.int32)
    pair_sequences = _sequences_at_day_starts(events, pairs, item_index, config.sequence_length)

    numeric_columns, numeric_mean, numeric_variance = _user_numeric_stats(user_features)
    pair_numeric = _user_numeric_matrix(pairs["user_id"].tolist(), user_features, numeric_columns, numeric_mean)

    # log-Q correction: in-batch negatives are drawn in proportion to item frequency.
    item_frequency = np.bincount(pair_items, minlength=n_items).astype(np.float64)
    item_log_probability = (
        np.log(np.maximum(item_frequency, 0.5) / item_frequency.sum()) if config.logq_correction else None
    )

    if user_sequences is not None:
        reference = last_item_sequences(events, as_of_start.date(), config.sequence_length)
        differ = _check_sequences_agree(user_sequences, reference)
        if differ > 0:
            log.warning(
                "recommender: user_sequences disagree with last_item_sequences(interactions) for %.1f%% of users; check the Spark job",
                100 * differ,
            )

    strategy, mixed_precision = choose_strategy()
    previous_policy = keras.mixed_precision.global_policy()
    if mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        with strategy.scope():
            item_attributes = np.column_stack(
                [np.eye(len(categories), dtype=np.float32)[category_codes], item_numeric[:, :1]]
            )
            user_tower = build_user_tower(
                len(numeric_columns), numeric_mean, numeric_variance, n_items, config, item_attributes
            )
            item_tower = build_item_tower(category_codes, len(categories), item_numeric, config)
            two_tower = TwoTowerModel(user_tower, item_tower, item_log_probability)
            optimizer = keras.optimizers.Adam(config.learning_rate)
            if mixed_precision:
                optimizer = keras.mixed_precision.LossScaleOptimizer(optimizer)
            two_tower.compile(optimizer=optimizer)
            (optimizer.inner_optimizer if mixed_precision else optimizer).build(two_tower.trainable_variables)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)

    global_batch_size = config.batch_size * strategy.num_replicas_in_sync
    train_inputs = {
        "numeric": pair_numeric,
        "sequence": pair_sequences,
        "item_index": pair_items,
        "weight": pairs["weight"].to_numpy(np.float32),
    }
    train_data = _dataset(train_inputs, global_batch_size, seed, shuffle=True)
    started = time.perf_counter()
    history = two_tower.fit(train_data, epochs=epochs, verbose=0)
    train_seconds = time.perf_counter() - started
    epochs_run = len(history.history.get("loss", []))

    item_embeddings = np.asarray(
        item_tower.predict(
            tf.data.Dataset.from_tensor_slices(np.arange(n_items, dtype=np.int32)).batch(config.score_batch_size),
            verbose=0,
        ),
        np.float32,
    )
    gpus = tf.config.list_physical_devices("GPU")
    metrics: dict[str, Any] = {
        "model": MODEL_NAME,
        "as_of": as_of_start.date().isoformat(),
        "training_window": {
            "start": window_start.date().isoformat(),
            "end_exclusive": holdout_start.date().isoformat(),
        },
        "holdout_window": {"start": holdout_start.date().isoformat(), "end_exclusive": as_of_start.date().isoformat()}
        if config.holdout_days
        else None,
        "n_users_train": int(pairs["user_id"].nunique()),
        "n_items": n_items,
        "n_items_seen_in_training": int((item_frequency > 0).sum()),
        "n_training_pairs": int(len(pairs)),
        "n_training_pairs_available": int(len(window_pairs)),
        "positive_event_weights": dict(config.event_weights),
        "user_numeric_columns": numeric_columns,
        "item_numeric_columns": ["log1p_price", *item_numeric_columns],
        "epochs": epochs_run,
        "batch_size": global_batch_size,
        "train_seconds": train_seconds,
        "examples_per_second": float(len(pairs) * epochs_run / train_seconds) if train_seconds > 0 else None,
        "final_train_loss": float(history.history["loss"][-1]) if epochs_run else None,
        "device": f"GPU x{len(gpus)}" if gpus else "CPU",
        "strategy": type(strategy).__name__,
        "replicas": int(strategy.num_replicas_in_sync),
        "mixed_precision": bool(mixed_precision),
        "seed": seed,
        "deterministic": deterministic,
        "tensorflow_version": tf.__version__,
        "tensorflow_recommenders_version": tfrs.__version__,
    }
    metadata = {
        "format_version": FORMAT_VERSION,
        "model_type": MODEL_NAME,
        "items": {"item_id": item_ids, "category": item_table["category"].tolist()},
        "user_numeric_columns": numeric_columns,
        "user_numeric_mean": np.asarray(numeric_mean, np.float64).tolist(),
        "config": dataclasses.asdict(config),
        "metrics": metrics,
    }
    model = Recommender(user_tower, item_embeddings, metadata)

    if config.holdout_days:
        metrics.update(
            _evaluate_holdout(
                model,
                two_tower,
                events,
                user_features,
                window_pairs,
                item_index,
                holdout_start,
                as_of_start,
                config,
                strategy,
            )
        )
    metrics["total_seconds"] = time.perf_counter() - started_all
    log.info("recommender trained: %s", {k: v for k, v in metrics.items() if not isinstance(v, (list, dict))})
    return model, metrics


def _evaluate_holdout(
    model: Recommender,
    two_tower: TwoTowerModel,
    events: pd.DataFrame,
    user_features: pd.DataFrame | None,
    pairs: pd.DataFrame,
    item_index: dict[str, int],
    holdout_start: pd.Timestamp,
    as_of_start: pd.Timestamp,
    config: RecommenderConfig,
    strategy: tf.distribute.Strategy,
) -> dict[str, Any]:
    held = events.loc[(events["event_ts"] >= holdout_start) & events["event_type"].isin(list(config.event_weights))]
    truth = held.groupby("user_id", sort=True)["item_id"].agg(lambda ids: set(ids))
    if truth.empty:
        log.warning("recommender: no positive interactions in the held-out window; no recall computed")
        return {"n_users_evaluated": 0}
    users = truth.index.tolist()
    queries = pd.DataFrame({"user_id": users, "day": holdout_start})
    sequences = _sequences_at_day_starts(events, queries, item_index, config.sequence_length)
    numeric = _user_numeric_matrix(
        users, user_features, model.user_numeric_columns, np.asarray(model.metadata["user_numeric_mean"], np.float32)
    )
    user_embeddings = model._embed(numeric, sequences)
    k_max = max(RECALL_KS)
    recommended = _rank(model, user_embeddings, k_max, None)
    popular = popularity_ranking(pairs)[:k_max]
    held_sets = truth.tolist()
    model_recall = recall_metrics(recommended, held_sets)
    popularity_recall = recall_metrics([popular] * len(users), held_sets)
    item_categories = dict(zip(model.item_ids, model.item_categories))
    category_ranked = category_popularity_rankings(pairs, users, item_categories, k_max)
    category_popularity_recall = recall_metrics(category_ranked, held_sets)

    # tfrs FactorizedTopK over the whole corpus, per held-out (user, item) pair.
    pair_rows = held.drop_duplicates(["user_id", "item_id"])
    pair_rows = pair_rows.loc[pair_rows["item_id"].isin(item_index)]
    factorized: dict[str, float] = {}
    if len(pair_rows):
        position = {u: i for i, u in enumerate(users)}
        rows = pair_rows["user_id"].map(position).to_numpy()
        with strategy.scope():
            ks = [k for k in RECALL_KS if k <= len(model.item_ids)] or [len(model.item_ids)]  # a corpus smaller than K
            index = tfrs.layers.factorized_top_k.BruteForce(k=max(ks))
            index.index(tf.constant(model.item_embeddings), tf.range(len(model.item_ids), dtype=tf.int32))
            two_tower.task.factorized_metrics = [tfrs.metrics.FactorizedTopK(candidates=index, ks=ks)]
            two_tower.compile(optimizer=two_tower.optimizer)  # re-collect the task's metrics
        holdout_inputs = {
            "numeric": numeric[rows],
            "sequence": sequences[rows],
            "item_index": pair_rows["item_id"].map(item_index).to_numpy(np.int32),
        }
        results = two_tower.evaluate(
            _dataset(holdout_inputs, config.batch_size, 0, shuffle=False), return_dict=True, verbose=0
        )
        factorized = {
            f"factorized_top_k_at_{k}": float(results[f"factorized_top_k/top_{k}_categorical_accuracy"]) for k in ks
        }
        factorized["n_holdout_pairs"] = int(len(pair_rows))

    return {
        "n_users_evaluated": len(users),
        "n_holdout_items_per_user": float(np.mean([len(s) for s in held_sets])),
        "recall_definition": "mean over users with >=1 held-out positive item of |top-K ∩ held-out items| / |held-out items|",
        "model": model_recall,
        "popularity": popularity_recall,
        "category_popularity": category_popularity_recall,
        "versus_category_popularity": paired_recall_difference(recommended, category_ranked, held_sets),
        **factorized,
    }


# ---------------------------------------------------------------------------- model store
def save_recommender_version(
    model: Recommender, store_uri: str, run_date: dt.date | str, data_hash: str, *, endpoint_url: str | None = None
) -> str:
    """Save ``model`` into the model store as ``recommender/{run_date}-{data_hash[:12]}``; return the version."""
    import tempfile

    from ml.model_store import save_model_version

    with tempfile.TemporaryDirectory(prefix="promoflow-recommender-") as tmp:
        model.save(tmp)
        return save_model_version(tmp, store_uri, run_date, data_hash, endpoint_url=endpoint_url, model_name=MODEL_NAME)


def load_recommender_version(
    store_uri: str, version: str | None, local_cache_dir: str | Path, *, endpoint_url: str | None = None
) -> Recommender:
    """Load ``version`` (None or "LATEST": the latest) of the recommender from the model store."""
    from ml.model_store import load_model_version

    local = load_model_version(store_uri, version, local_cache_dir, endpoint_url=endpoint_url, model_name=MODEL_NAME)
    return Recommender.load(local)


def interactions_hash(interactions: pd.DataFrame) -> str:
    """sha256 of the interactions' (user_id, item_id, event_ts, event_type): a version's data hash."""
    import hashlib

    columns = [c for c in ("user_id", "item_id", "event_ts", "event_type") if c in interactions.columns]
    payload = pd.util.hash_pandas_object(interactions[columns], index=False).values.tobytes()
    return hashlib.sha256(payload).hexdigest()
