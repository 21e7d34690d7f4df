"""Models, decision policy and delivery for the nightly promotion assignment.

Modules (pure, importable functions; no I/O beyond what their names say):

- ``feature_spec``    the one feature spec shared by training and scoring
- ``training_data``   logged-exposure preparation: arm encoding, IPS weights, time split, AUC
- ``predictions``     ``ArmPredictions``: per-user x per-arm model outputs and derived money
- ``response_model``  multi-treatment TensorFlow response model (train / predict / save / load)
- ``uplift``          doubly robust ridge uplift model with bootstrap uncertainty (numpy)
- ``response_models`` trains both response models, selects production on held-out data, off-policy gate
- ``evaluation``      held-out policy value (DR), Qini / AUUC, calibration
- ``off_policy``      IPS / SNIPS / DR estimators and the publish gate rule
- ``model_store``     versioned model folders in a local folder or ``s3://`` prefix
- ``recommender``     two-tower retrieval model (TFRS): featured items per user, top-K with category limits
- ``model_card``      Markdown model cards from training metrics
- ``policy``          budget-constrained allocation, holdout, exploration and propensities
- ``delivery``        offer text, channel choice and reason codes

Importing this package never imports TensorFlow; ``response_model`` and ``recommender`` do.
"""

import os

# tensorflow-recommenders and this package's models use Keras 2 (tf-keras). TensorFlow reads
# this variable when ``tf.keras`` is first touched, so it must be set before any TF import.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
