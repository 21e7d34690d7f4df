"""Multi-treatment promo response model (TensorFlow, Keras 2 functional API).

One shared trunk over the user features (normalised numerics + a ``top_category``
embedding) feeds one small head per arm (catalogue promo_ids + ``none``). Each head gives

- P(order within the outcome window | arm)           (sigmoid)
- E[order margin | order, arm]                        (linear, currency)
- E[discount | order, arm]                            (softplus, currency, >= 0)

Training uses only the logged arm's heads per example, inverse-propensity weights
(clipped, mean 1), and margin/discount losses on converted rows only. Early stopping
watches a time-ordered validation split (the latest rows). The arm order is the list
stored with the model; scoring returns :class:`ml.predictions.ArmPredictions` in it.

Entry points: :func:`train_response_model`, :meth:`ResponseModel.predict`,
:meth:`ResponseModel.save`, :meth:`ResponseModel.load`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import tensorflow as tf
import tf_keras as keras

import ml  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow is imported)
from ml.feature_spec import (
    CATEGORICAL_FEATURES,
    NUMERIC_FEATURES,
    categorical_column,
    feature_spec_dict,
    numeric_matrix,
)
from ml.predictions import NONE_ARM, ArmPredictions
from ml.training_data import MAX_IPS_WEIGHT, PreparedTraining, per_arm_auc, prepare_training, time_ordered_split

log = logging.getLogger(__name__)

MODEL_FILE = "response_model.keras"
METADATA_FILE = "response_model.json"
FORMAT_VERSION = 1
_CATEGORY_FEATURE = CATEGORICAL_FEATURES[0]


@dataclass(frozen=True)
class ResponseModelConfig:
    """Architecture and optimiser settings (stored with the model)."""

    trunk_units: tuple[int, ...] = (64, 32)
    head_units: int = 16
    category_embedding_dim: int = 4
    learning_rate: float = 3e-3
    validation_share: float = 0.2
    early_stopping_patience: int = 3
    max_ips_weight: float = MAX_IPS_WEIGHT
    predict_batch_size: int = 8192


# ---------------------------------------------------------------------------- devices
def choose_strategy() -> tuple[tf.distribute.Strategy, bool]:
    """(strategy, use_mixed_precision) for the devices present.

    GPUs: MirroredStrategy over all of them with mixed_float16; CPU: the default strategy
    in float32 (float16 matmuls are slower than float32 on CPUs).
    """
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        return tf.distribute.MirroredStrategy(), True
    return tf.distribute.get_strategy(), False


def enable_determinism(seed: int) -> None:
    """Seed Python/numpy/TF and make TF ops deterministic (process-wide, used by tests)."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


# ---------------------------------------------------------------------------- model
def build_scoring_model(
    arms: Sequence[str],
    numeric_mean: np.ndarray,
    numeric_variance: np.ndarray,
    category_vocabulary: Sequence[str],
    margin_scale: float,
    discount_scale: float,
    config: ResponseModelConfig = ResponseModelConfig(),
) -> keras.Model:
    """Functional model: {numeric [n,F] float32, top_category [n,1] string} ->
    {order_logit, p_order, margin_if_order, discount_if_order}, each [n, n_arms] float32.

    Normalisation stats, the category vocabulary and the money scales live in layers, so
    the saved Keras file scores on its own.
    """
    n_arms = len(arms)
    numeric = keras.Input(shape=(len(numeric_mean),), dtype="float32", name="numeric")
    category = keras.Input(shape=(1,), dtype="string", name=_CATEGORY_FEATURE)

    x_numeric = keras.layers.Normalization(
        axis=-1,
        mean=np.asarray(numeric_mean).tolist(),
        variance=np.asarray(numeric_variance).tolist(),
        name="numeric_normalisation",
    )(numeric)
    category_ids = keras.layers.StringLookup(
        vocabulary=list(category_vocabulary), num_oov_indices=1, name="category_lookup"
    )(category)
    x_category = keras.layers.Flatten(name="category_flat")(
        keras.layers.Embedding(len(category_vocabulary) + 1, config.category_embedding_dim, name="category_embedding")(
            category_ids
        )
    )
    trunk = keras.layers.Concatenate(name="trunk_input")([x_numeric, x_category])
    for i, units in enumerate(config.trunk_units):
        trunk = keras.layers.Dense(units, activation="relu", name=f"trunk_{i}")(trunk)

    logits, margins, discounts = [], [], []
    for k in range(n_arms):  # layer names use the arm position: promo_ids may hold any characters
        head = keras.layers.Dense(config.head_units, activation="relu", name=f"arm{k}_hidden")(trunk)
        logits.append(keras.layers.Dense(1, name=f"arm{k}_order_logit")(head))
        margins.append(keras.layers.Dense(1, name=f"arm{k}_margin")(head))
        discounts.append(keras.layers.Dense(1, name=f"arm{k}_discount")(head))

    def stack(parts: list, name: str):
        return keras.layers.Concatenate(name=name)(parts) if n_arms > 1 else parts[0]

    # Outputs are float32 even under mixed precision: losses and money need the precision.
    order_logit = keras.layers.Activation("linear", dtype="float32", name="order_logit")(stack(logits, "order_logits"))
    p_order = keras.layers.Activation("sigmoid", dtype="float32", name="p_order")(order_logit)
    margin = keras.layers.Rescaling(float(margin_scale), dtype="float32", name="margin_if_order")(
        stack(margins, "margins")
    )
    discount = keras.layers.Rescaling(float(discount_scale), dtype="float32", name="discount_if_order")(
        keras.layers.Activation("softplus", dtype="float32", name="discount_softplus")(stack(discounts, "discounts"))
    )
    return keras.Model(
        inputs={"numeric": numeric, _CATEGORY_FEATURE: category},
        outputs={
            "order_logit": order_logit,
            "p_order": p_order,
            "margin_if_order": margin,
            "discount_if_order": discount,
        },
        name="promo_response",
    )


class ResponseTrainer(keras.Model):
    """Training wrapper around the scoring model: the task and its loss.

    Per example, only the logged arm's heads get loss: binary cross-entropy of the order
    logit, plus (converted rows only) Huber losses of margin and discount in units of their
    training scale; everything times the example's IPS weight.
    """

    def __init__(self, scoring_model: keras.Model, margin_scale: float, discount_scale: float, **kwargs: Any):
        super().__init__(**kwargs)
        self.scoring_model = scoring_model
        self.margin_scale = float(margin_scale)
        self.discount_scale = float(discount_scale)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self._huber = keras.losses.Huber(reduction=keras.losses.Reduction.NONE)

    @property
    def metrics(self) -> list:
        return [self.loss_tracker]

    def call(self, inputs, training: bool = False):
        return self.scoring_model(inputs, training=training)

    def per_example_loss(self, batch: dict, training: bool) -> tf.Tensor:
        outputs = self.scoring_model(
            {"numeric": batch["numeric"], _CATEGORY_FEATURE: batch[_CATEGORY_FEATURE]}, training=training
        )
        arm = tf.cast(batch["arm_index"], tf.int32)[:, None]
        converted = batch["converted"]

        def logged(name: str) -> tf.Tensor:
            return tf.gather(tf.cast(outputs[name], tf.float32), arm, batch_dims=1)[:, 0]

        order_loss = tf.nn.sigmoid_cross_entropy_with_logits(labels=converted, logits=logged("order_logit"))
        margin_loss = self._huber(
            (batch["order_margin"] / self.margin_scale)[:, None],
            (logged("margin_if_order") / self.margin_scale)[:, None],
        )
        discount_loss = self._huber(
            (batch["discount_amount"] / self.discount_scale)[:, None],
            (logged("discount_if_order") / self.discount_scale)[:, None],
        )
        return batch["weight"] * (order_loss + converted * (margin_loss + discount_loss))

    def train_step(self, batch: dict) -> dict:
        with tf.GradientTape() as tape:
            per_example = self.per_example_loss(batch, training=True)
            # Sum over the global batch / its size: correct gradients under MirroredStrategy.
            loss = tf.nn.compute_average_loss(per_example)
        self.optimizer.minimize(loss, self.scoring_model.trainable_variables, tape=tape)
        self.loss_tracker.update_state(per_example)
        return {"loss": self.loss_tracker.result()}

    def test_step(self, batch: dict) -> dict:
        self.loss_tracker.update_state(self.per_example_loss(batch, training=False))
        return {"loss": self.loss_tracker.result()}


# ---------------------------------------------------------------------------- inputs
def _model_inputs(features: pd.DataFrame, numeric_features: Sequence[str]) -> dict[str, np.ndarray]:
    return {
        "numeric": numeric_matrix(features, numeric_features),
        _CATEGORY_FEATURE: categorical_column(features, _CATEGORY_FEATURE).reshape(-1, 1),
    }


def _training_dataset(
    inputs: dict, prepared: PreparedTraining, rows: np.ndarray, batch_size: int, seed: int, shuffle: bool
) -> tf.data.Dataset:
    tensors = {name: values[rows] for name, values in inputs.items()}
    tensors.update(
        arm_index=prepared.arm_index[rows],
        converted=prepared.converted[rows],
        order_margin=prepared.order_margin[rows],
        discount_amount=prepared.discount_amount[rows],
        weight=prepared.weight[rows],
    )
    dataset = tf.data.Dataset.from_tensor_slices(tensors)
    if shuffle:
        dataset = dataset.shuffle(len(rows), seed=seed, reshuffle_each_iteration=True)
    options = tf.data.Options()
    options.deterministic = True
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE).with_options(options)


def _positive_scale(values: np.ndarray) -> float:
    """Typical absolute size of a money target, so heads learn in units near 1."""
    scale = float(np.std(values)) if values.size else 0.0
    scale = max(scale, float(np.mean(np.abs(values))) if values.size else 0.0)
    return scale if scale > 1e-6 else 1.0


# ---------------------------------------------------------------------------- model object
class ResponseModel:
    """A trained response model: the Keras scoring model plus what scoring needs to know."""

    def __init__(self, keras_model: keras.Model, metadata: dict):
        self.keras_model = keras_model
        self.metadata = metadata

    @property
    def arms(self) -> list[str]:
        return list(self.metadata["arms"])

    @property
    def none_index(self) -> int:
        return self.arms.index(NONE_ARM)

    @property
    def numeric_features(self) -> list[str]:
        return list(self.metadata["feature_spec"]["numeric_features"])

    @property
    def training_metrics(self) -> dict:
        return self.metadata["training_metrics"]

    def _raw_outputs(self, features: pd.DataFrame) -> dict[str, np.ndarray]:
        inputs = _model_inputs(features, self.numeric_features)
        if len(features) == 0:
            empty = np.zeros((0, len(self.arms)))
            return {"p_order": empty, "margin_if_order": empty, "discount_if_order": empty}
        dataset = tf.data.Dataset.from_tensor_slices(inputs).batch(self.metadata["config"]["predict_batch_size"])
        return self.keras_model.predict(dataset, verbose=0)

    def predict(self, features: pd.DataFrame) -> ArmPredictions:
        """Per-arm predictions for every row of a user_features-shaped frame."""
        outputs = self._raw_outputs(features)
        return ArmPredictions(
            arms=self.arms,
            p_order=outputs["p_order"],
            margin_if_order=outputs["margin_if_order"],
            discount_if_order=outputs["discount_if_order"],
        )

    def save(self, local_dir: str | Path) -> Path:
        """Write ``response_model.keras`` and ``response_model.json`` into ``local_dir``."""
        local_dir = Path(local_dir)
        local_dir.mkdir(parents=True, exist_ok=True)
        self.keras_model.save(local_dir / MODEL_FILE)
        (local_dir / METADATA_FILE).write_text(json.dumps(self.metadata, indent=2, sort_keys=True))
        return local_dir

    @classmethod
    def load(cls, local_dir: str | Path) -> ResponseModel:
        local_dir = Path(local_dir)
        metadata_path, model_path = local_dir / METADATA_FILE, local_dir / MODEL_FILE
        for path in (metadata_path, model_path):
            if not path.exists():
                raise FileNotFoundError(
                    f"{path}: missing; a response model folder holds {MODEL_FILE} and {METADATA_FILE}"
                )
        metadata = json.loads(metadata_path.read_text())
        if metadata.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{metadata_path}: format_version {metadata.get('format_version')!r}; this code reads {FORMAT_VERSION}"
            )
        keras_model = keras.models.load_model(model_path, compile=False)
        return cls(keras_model, metadata)


# ---------------------------------------------------------------------------- training
def train_response_model(
    training: pd.DataFrame,
    arms: list[str],
    *,
    seed: int = 0,
    epochs: int = 20,
    batch_size: int = 256,
    deterministic: bool = False,
    config: ResponseModelConfig = ResponseModelConfig(),
) -> ResponseModel:
    """Train on logged exposures (columns: see ``ml.training_data``) for ``arms``.

    ``arms`` is the catalogue's promo_ids; ``none`` is appended when missing. With
    ``deterministic=True`` two runs on the same data and seed give identical weights (op
    determinism is switched on process-wide and stays on).
    """
    if deterministic:
        enable_determinism(seed)
    else:
        keras.utils.set_random_seed(seed)

    prepared = prepare_training(training, arms, config.max_ips_weight)
    arms = prepared.arms
    never_logged = [arm for k, arm in enumerate(arms) if not (prepared.arm_index == k).any()]
    if never_logged:
        # Their heads keep random initial weights: scores for them are not evidence of anything.
        log.warning(
            "response model: arms %s were never logged in the training data; their predictions are untrained",
            never_logged,
        )
    numeric_features = list(NUMERIC_FEATURES)
    inputs = _model_inputs(prepared.features, numeric_features)
    train_rows, validation_rows = time_ordered_split(prepared.n_rows, config.validation_share)

    # Normalisation stats and vocabulary come from the training split only.
    train_numeric = inputs["numeric"][train_rows].astype(np.float64)
    numeric_mean = train_numeric.mean(axis=0)
    numeric_variance = np.maximum(train_numeric.var(axis=0), 1e-6)
    vocabulary = sorted(set(inputs[_CATEGORY_FEATURE][train_rows, 0].tolist()))
    converted_train = train_rows[prepared.converted[train_rows] > 0]
    margin_scale = _positive_scale(prepared.order_margin[converted_train])
    discount_scale = _positive_scale(prepared.discount_amount[converted_train])

    strategy, mixed_precision = choose_strategy()
    previous_policy = keras.mixed_precision.global_policy()
    if mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        with strategy.scope():
            scoring_model = build_scoring_model(
                arms, numeric_mean, numeric_variance, vocabulary, margin_scale, discount_scale, config
            )
            trainer = ResponseTrainer(scoring_model, margin_scale, discount_scale)
            optimizer = keras.optimizers.Adam(config.learning_rate)
            if mixed_precision:
                optimizer = keras.mixed_precision.LossScaleOptimizer(optimizer)
            trainer.compile(optimizer=optimizer)
            # Slots created up front: otherwise the first step creates them inside tf.function,
            # which then traces the whole train step twice (seconds per training on CPU).
            (optimizer.inner_optimizer if mixed_precision else optimizer).build(scoring_model.trainable_variables)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)

    global_batch_size = batch_size * strategy.num_replicas_in_sync
    train_data = _training_dataset(inputs, prepared, train_rows, global_batch_size, seed, shuffle=True)
    callbacks = []
    validation_data = None
    if len(validation_rows):
        validation_data = _training_dataset(inputs, prepared, validation_rows, global_batch_size, seed, shuffle=False)
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=config.early_stopping_patience, restore_best_weights=True
            )
        )

    started = time.perf_counter()
    history = trainer.fit(train_data, validation_data=validation_data, epochs=epochs, callbacks=callbacks, verbose=0)
    train_seconds = time.perf_counter() - started
    epochs_run = len(history.history["loss"])

    metadata = {
        "format_version": FORMAT_VERSION,
        "model_type": "promo_response",
        "arms": arms,
        "feature_spec": feature_spec_dict(numeric_features, CATEGORICAL_FEATURES),
        "normalisation": {"mean": numeric_mean.tolist(), "variance": numeric_variance.tolist()},
        "category_vocabulary": vocabulary,
        "margin_scale": margin_scale,
        "discount_scale": discount_scale,
        "config": dataclasses.asdict(config),
        "training": {
            "seed": seed,
            "epochs": epochs,
            "batch_size": batch_size,
            "deterministic": deterministic,
            "strategy": type(strategy).__name__,
            "replicas": strategy.num_replicas_in_sync,
            "mixed_precision": mixed_precision,
            "tensorflow_version": tf.__version__,
        },
    }
    model = ResponseModel(scoring_model, metadata)

    validation_auc: dict[str, float | None] = {arm: None for arm in arms}
    if len(validation_rows):
        p_validation = model.predict(prepared.features.iloc[validation_rows]).p_order
        validation_auc = per_arm_auc(
            arms, prepared.arm_index[validation_rows], prepared.converted[validation_rows], p_validation
        )
    metadata["training_metrics"] = {
        "rows": prepared.n_rows,
        "train_rows": int(len(train_rows)),
        "validation_rows": int(len(validation_rows)),
        "rows_dropped_unknown_arm": prepared.rows_dropped_unknown_arm,
        "rows_per_arm": {arm: int((prepared.arm_index == k).sum()) for k, arm in enumerate(arms)},
        "conversion_rate": float(prepared.converted.mean()),
        "epochs_run": epochs_run,
        "best_val_loss": float(min(history.history["val_loss"])) if "val_loss" in history.history else None,
        "final_train_loss": float(history.history["loss"][-1]),
        "train_seconds": train_seconds,
        # Includes the per-epoch validation pass: what a nightly run actually pays per example.
        "examples_per_second": float(len(train_rows) * epochs_run / train_seconds) if train_seconds > 0 else None,
        "validation_auc": validation_auc,
    }
    log.info("response model trained: %s", metadata["training_metrics"])
    return model
