"""Models, decision policy and delivery for the nightly promotion assignment.

Modules (pure, importable functions; no I/O beyond what their names say):

- ``feature_spec``              the one feature spec shared by training and scoring
- ``training_data``             logged exposures -> training examples: arm encoding, IPS weights, time split, AUC
- ``predictions``               ``ArmPredictions``: per-user x per-arm model outputs and derived money
- ``candidates``                the policy ladder: none, blanket arms, ranked rule, policy tree, per-user scores
- ``models.pooled_response``    ``pooled_main`` / ``pooled_response``: one model for every arm through offer mechanics
- ``models.boosted_response``   ``boosted_response``: bagged LightGBM P(order) through offer mechanics, penalised by its spread
- ``models.dr_ridge``           ``dr_ridge``: doubly robust ridge uplift with bootstrap uncertainty (numpy)
- ``models.tf_multihead``       ``tf_multihead``: multi-treatment TensorFlow response model
- ``selection``                 out-of-fold valuation of every candidate and the written selection rule
- ``training``                  the night's training: candidates, selection, the stored ``SelectedPolicy``
- ``evaluation``                held-out policy value (DR), Qini / AUUC, calibration
- ``ope``                       off-policy estimators: IPS / SNIPS / DR with confidence intervals
- ``allocation``                budget-constrained allocation, holdout, exploration and propensities
- ``delivery``                  offer text, channel choice and reason codes
- ``model_store``               versioned model folders in a local folder or ``s3://`` prefix
- ``model_card``                Markdown model cards from training metrics
- ``recommender``               two-tower retrieval model (TFRS): featured items per user
- ``recommender_eval``          offline evaluation of the recommender on a landing zone

Importing this package never imports TensorFlow; ``models.tf_multihead`` and ``recommender`` do.
"""

import os

# tensorflow-recommenders and this package's models use Keras 2 (tf-keras). TensorFlow reads
# this variable when ``tf.keras`` is first touched, so it must be set before any TF import.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
