"""Per-user x per-arm outputs of a response model, and the money derived from them.

Money follows docs/ARCHITECTURE.md: ``expected_cost = P(order | arm) x E[discount | order,
arm]`` and ``expected_incremental_margin(arm) = E[margin | arm] - E[margin | none]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from promoflow.contract import NONE_ARM


@dataclass
class ArmPredictions:
    """Model outputs, each a float64 array of shape [n_users, n_arms] in ``arms`` order."""

    arms: list[str]
    p_order: np.ndarray
    margin_if_order: np.ndarray
    discount_if_order: np.ndarray
    expected_margin: np.ndarray = field(init=False)
    expected_cost: np.ndarray = field(init=False)
    expected_incremental_margin: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.arms = list(self.arms)
        if NONE_ARM not in self.arms:
            raise ValueError(f"arms {self.arms} lack the {NONE_ARM!r} arm that uplift is measured against")
        self.p_order = np.asarray(self.p_order, dtype=np.float64)
        self.margin_if_order = np.asarray(self.margin_if_order, dtype=np.float64)
        self.discount_if_order = np.asarray(self.discount_if_order, dtype=np.float64)
        shape = self.p_order.shape
        if len(shape) != 2 or shape[1] != len(self.arms):
            raise ValueError(f"p_order has shape {shape}; expected [n_users, {len(self.arms)}]")
        for name in ("margin_if_order", "discount_if_order"):
            if getattr(self, name).shape != shape:
                raise ValueError(f"{name} has shape {getattr(self, name).shape}; expected {shape}")
        self.expected_margin = self.p_order * self.margin_if_order
        self.expected_cost = self.p_order * self.discount_if_order
        none = self.none_index
        self.expected_incremental_margin = self.expected_margin - self.expected_margin[:, none : none + 1]

    @property
    def none_index(self) -> int:
        return self.arms.index(NONE_ARM)

    @property
    def n_users(self) -> int:
        return self.p_order.shape[0]
