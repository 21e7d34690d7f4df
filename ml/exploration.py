"""Exploration's evidence: readable user segments and the held-out value of each arm in each.

Each night's training fits a shallow policy tree (the ``policy_tree`` candidate's learner) on
half of the matured exposures' doubly robust scores; its leaves are the segments. On the other
half, each segment's mean DR score per arm and its standard error say what sending that arm
there is worth and how sure the data are. ``ml.allocation.explore`` reads them: more of
tonight's explorers go to segments whose best arm is uncertain, and an explorer's arm is drawn
partly uniformly, partly by Thompson sampling on those values, so an arm the evidence already
condemns is rarely sent for the sake of exploring. Stored with the night's model version.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml.candidates import NONE_ARM, TREE_MIN_LEAF_SHARE, tree_inputs, tree_leaves

SEGMENT_DEPTH = 2


@dataclass
class ExplorationPrior:
    """Per segment (a policy-tree leaf) and arm: mean DR incremental margin per user and its se."""

    tree: object  # econml.policy.PolicyTree
    columns: list[str]
    leaves: list[int]  # tree leaf id of each segment
    mean: np.ndarray  # [segments, arms]; 0 for none
    se: np.ndarray  # [segments, arms]; 0 for none
    rows: np.ndarray  # [segments] held-out rows the figures rest on
    rules: list[str]  # per segment, its path in the tree

    def segment(self, features: pd.DataFrame) -> np.ndarray:
        """[n] segment index of each user."""
        lookup = np.full(max(self.leaves) + 1, -1, dtype=np.int64)
        lookup[self.leaves] = np.arange(len(self.leaves))
        return lookup[self.tree.apply(tree_inputs(features, self.columns))]


def fit_exploration_prior(
    arms: list[str],
    features: pd.DataFrame,
    columns: list[str],
    gamma: np.ndarray,
    eligible_arms: np.ndarray,
    groups: np.ndarray,
    seed: int = 0,
) -> ExplorationPrior | None:
    """Segments from a depth-2 policy tree on one half of the rows (split by ``groups``, so a user
    is in one half), each segment's per-arm DR mean and se on the other. None with too few rows."""
    from econml.policy import PolicyTree

    from ml.selection import stable_uniform

    n = len(gamma)
    min_leaf = max(20, int(TREE_MIN_LEAF_SHARE * n / 2))
    if n < 4 * min_leaf:
        return None
    half = stable_uniform(list(pd.Series(groups).astype(str)), f"exploration-segments-{seed}") < 0.5
    treatments = [k for k in range(len(arms)) if eligible_arms[k]]
    x = tree_inputs(features, columns)
    tree = PolicyTree(max_depth=SEGMENT_DEPTH, min_samples_leaf=min_leaf, honest=True, random_state=seed).fit(
        x[half], gamma[half][:, treatments]
    )
    leaf_of_row = tree.apply(x[~half])
    leaves, paths = zip(*tree_leaves(tree, columns), strict=True)
    held = gamma[~half]
    mean = np.zeros((len(leaves), len(arms)))
    se = np.full((len(leaves), len(arms)), np.inf)
    rows = np.zeros(len(leaves), dtype=np.int64)
    for s, leaf in enumerate(leaves):
        g = held[leaf_of_row == leaf]
        rows[s] = len(g)
        if len(g) >= 2:
            mean[s] = g.mean(axis=0)
            se[s] = g.std(axis=0, ddof=1) / math.sqrt(len(g))
    none = arms.index(NONE_ARM)
    mean[:, none] = se[:, none] = 0.0
    return ExplorationPrior(tree, list(columns), [int(v) for v in leaves], mean, se, rows, list(paths))
