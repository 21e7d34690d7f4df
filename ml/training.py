"""Train the night's candidate policies, choose the production one on held-out data, store it.

The candidates (``ml.candidates``: ``none``, every blanket arm, a ranked rule, a policy tree,
the pooled response models, ``dr_ridge``, ``tf_multihead``) are valued out-of-fold and chosen
by the rule written down in ``ml.selection``; :class:`SelectedPolicy` keeps the chosen one, the
shared cost model and the selection's figures, and renders the model card.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from ml.exploration import fit_exploration_prior
from ml.feature_spec import CATEGORICAL_FEATURES, NUMERIC_FEATURES
from ml.models.dr_ridge import ArmScores, UpliftModel, propensity_or_uniform
from ml.predictions import NONE_ARM
from ml.selection import FOLDS, PolicyData, candidate_names, evaluate_and_select, tree_columns
from ml.training_data import normalise_arms

log = logging.getLogger(__name__)

SELECTION_FILE = "production.json"
POLICY_FILE = "policy.joblib"
TF_DIR = "tf_multihead"


def tf_arm_scores(
    predictions, window_days: np.ndarray, control_window: float, logged_window_days: np.ndarray | None = None
) -> ArmScores:
    """ArmScores from the TF model. It predicts each arm's margin over the windows it was
    trained on, which differ from the catalogue windows scoring needs: every arm's margin is
    turned into a rate per day (over its mean logged window, ``logged_window_days``; the
    control's is ``control_window``) and the incremental margin is
    ``window_days[a] * (rate_a - rate_none)``, as ``ml.models.dr_ridge`` does. Training rows' outcomes
    are censored at the next offer (``fct_promo_outcomes.outcome_days``), so the logged windows
    are shorter than the catalogue's. Without ``logged_window_days`` (a model stored before
    censoring), an arm's logged window is taken to be its catalogue window."""
    none = predictions.none_index
    window = np.asarray(window_days, dtype=np.float64)
    logged = window if logged_window_days is None else np.asarray(logged_window_days, dtype=np.float64)
    arm_ratio = np.where((window > 0) & (logged > 0), window / np.where(logged > 0, logged, 1.0), 1.0)
    ratio = np.where(window > 0, window / control_window, 1.0)
    incremental = (
        predictions.expected_margin * arm_ratio[None, :]
        - predictions.expected_margin[:, none : none + 1] * ratio[None, :]
    )
    incremental[:, none] = 0.0
    cost = predictions.expected_cost.copy()
    cost[:, none] = 0.0
    return ArmScores(list(predictions.arms), incremental, cost)


@dataclass
class SelectedPolicy:
    """The stored result of one night's training: the chosen candidate policy, the shared models, the gate."""

    arms: list[str]
    window_days: list[float]
    production: str  # the candidate published (or rolled out); "none" when nothing is
    gate: dict  # status ("published", "rollout", "none"), message, per-candidate values
    selection_metrics: dict
    fitted: object | None = None  # an ml.candidates fitted policy
    shared: object | None = None  # ml.selection.SharedModels (cost model, pooled response)
    rollout_share: float = 0.0
    exploration: object | None = None  # ml.exploration.ExplorationPrior: where and what to explore

    @property
    def gate_passed(self) -> bool:
        return bool(self.gate.get("passed"))

    @property
    def status(self) -> str:
        return str(self.gate.get("status", "published" if self.gate_passed else "none"))

    @property
    def uplift(self) -> UpliftModel | None:
        """The DR-ridge model when it is the production candidate (its reasons name drivers)."""
        scorer = getattr(self.fitted, "scorer", None)
        return getattr(scorer, "model", None) if self.production == "dr_ridge" else None

    def cost(self, features: pd.DataFrame, arm_window: np.ndarray) -> np.ndarray:
        """[n, arms] calibrated expected discount of each arm (0 for none)."""
        cost = self.shared.cost_model.cost(self.shared.p_order(features, np.asarray(arm_window, dtype=np.float64)))
        cost[:, self.arms.index(NONE_ARM)] = 0.0
        return cost

    def save(self, local_dir: str | Path, *, run_date: date | None = None, data_hash: str | None = None) -> Path:
        import joblib

        local_dir = Path(local_dir)
        local_dir.mkdir(parents=True, exist_ok=True)
        tf_model = None
        scorer = getattr(self.fitted, "scorer", None)
        if self.production == "tf_multihead" and scorer is not None:
            tf_model, scorer.model = scorer.model, None
            tf_model.save(local_dir / TF_DIR)
        if self.shared is not None:
            self.shared.pooled.train_base_logit = None  # training-row state, not needed to score
        try:
            joblib.dump(
                {"fitted": self.fitted, "shared": self.shared, "exploration": self.exploration},
                local_dir / POLICY_FILE,
                compress=3,
            )
        finally:
            if tf_model is not None:
                scorer.model = tf_model
        payload = {
            "arms": self.arms,
            "window_days": self.window_days,
            "production_model": self.production,
            "rollout_share": self.rollout_share,
            "gate": self.gate,
            "selection_metrics": self.selection_metrics,
            "run_date": run_date.isoformat() if run_date else None,
            "training_data_sha256": data_hash,
        }
        (local_dir / SELECTION_FILE).write_text(json.dumps(payload, indent=2, sort_keys=True, default=str))
        (local_dir / "metrics.json").write_text(
            json.dumps(self.selection_metrics, indent=2, sort_keys=True, default=str)
        )
        (local_dir / "model_card.md").write_text(render_response_card(payload))
        return local_dir


def load(local_dir: str | Path) -> SelectedPolicy:
    """Load a stored version written by :meth:`SelectedPolicy.save`."""
    import joblib

    local_dir = Path(local_dir)
    selection_path = local_dir / SELECTION_FILE
    if not selection_path.exists() or not (local_dir / POLICY_FILE).exists():
        raise FileNotFoundError(
            f"{local_dir}: missing {SELECTION_FILE} or {POLICY_FILE}; this model version predates the candidate ladder"
        )
    payload = json.loads(selection_path.read_text())
    stored = joblib.load(local_dir / POLICY_FILE)
    fitted = stored["fitted"]
    if payload["production_model"] == "tf_multihead" and fitted is not None:
        from ml.models.tf_multihead import ResponseModel

        fitted.scorer.model = ResponseModel.load(local_dir / TF_DIR)
    return SelectedPolicy(
        arms=payload["arms"],
        window_days=payload["window_days"],
        production=payload["production_model"],
        gate=payload["gate"],
        selection_metrics=payload["selection_metrics"],
        fitted=fitted,
        shared=stored["shared"],
        rollout_share=float(payload.get("rollout_share") or 0.0),
        exploration=stored.get("exploration"),  # absent from versions stored before it existed
    )


def policy_data(
    frame: pd.DataFrame,
    arms: Sequence[str],
    window_days: Mapping[str, float],
    catalogue: pd.DataFrame | None = None,
    validation_candidates: np.ndarray | None = None,
) -> PolicyData:
    """The training frame (see :func:`train_and_select`) as ``ml.selection.PolicyData``."""
    arms_list = normalise_arms(arms)
    arm_of = {a: i for i, a in enumerate(arms_list)}
    known = frame["promo_id"].isin(arm_of)
    if not known.all():
        log.warning("training: dropping %d rows of promos outside the arms", int((~known).sum()))
    frame = frame.loc[known].reset_index(drop=True)
    evaluable = (
        np.ones(len(frame), dtype=bool)
        if validation_candidates is None
        else np.asarray(validation_candidates, dtype=bool)[known.to_numpy()]
    )
    converted = pd.to_numeric(frame["converted"], errors="coerce").fillna(0).to_numpy(dtype=np.float64)
    margin = np.where(
        converted > 0, pd.to_numeric(frame["order_margin"], errors="coerce").fillna(0.0).to_numpy(dtype=np.float64), 0.0
    )
    discount = np.where(
        converted > 0,
        pd.to_numeric(frame["discount_amount"], errors="coerce").fillna(0.0).to_numpy(dtype=np.float64),
        0.0,
    )
    full_discount = (
        pd.to_numeric(frame["full_discount_amount"], errors="coerce").fillna(0.0).to_numpy(dtype=np.float64)
        if "full_discount_amount" in frame.columns
        else discount
    )
    data = PolicyData(
        features=frame[[*NUMERIC_FEATURES, *CATEGORICAL_FEATURES]].reset_index(drop=True),
        arms=arms_list,
        arm_index=frame["promo_id"].map(arm_of).to_numpy(),
        propensity=propensity_or_uniform(frame["propensity"], len(arms_list)),
        converted=converted,
        margin=margin,
        discount=discount,
        window_days=pd.to_numeric(frame["window_days"], errors="coerce").to_numpy(dtype=np.float64),
        arm_window=np.array([0.0 if a == NONE_ARM else float(window_days[a]) for a in arms_list]),
        send_cost=np.zeros(len(arms_list)),
        numeric_features=list(NUMERIC_FEATURES),
        categorical_features=list(CATEGORICAL_FEATURES),
        groups=frame["user_id"].astype(str).to_numpy() if "user_id" in frame.columns else np.arange(len(frame)),
        evaluable=evaluable,
        catalogue=catalogue,
        full_discount=full_discount,
    )
    return data


def train_and_select(
    frame: pd.DataFrame,
    arms: Sequence[str],
    window_days: Mapping[str, float],
    active: Mapping[str, bool] | None = None,
    *,
    seed: int = 0,
    gate_z: float = 1.645,
    uncertainty_penalty: float = 1.5,
    budget_per_user: float | None = None,
    rollout_share: float = 0.25,
    catalogue: pd.DataFrame | None = None,
    train_tf: bool = True,
    validation_candidates: np.ndarray | None = None,
    folds: int = FOLDS,
) -> SelectedPolicy:
    """Value every candidate of the ladder out-of-fold on the logged exposures, choose by the
    written rule (``ml.selection``), refit the chosen one on every row.

    ``frame``: feature columns + promo_id, propensity, converted, order_margin,
    discount_amount, window_days (the censored window), optional user_id (folds keep a user's
    rows together), full_discount_amount (cost calibration). ``validation_candidates`` (bool
    per row) marks the rows a policy may be valued on: exposures whose every arm's window has
    closed, so each arm is represented there as the logging policy drew it.
    """
    data = policy_data(frame, arms, window_days, catalogue, validation_candidates)
    arms_list = data.arms
    eligible = np.array([a == NONE_ARM or (active or {}).get(a, True) for a in arms_list])
    per_user = ["pooled_main", "pooled_response", "boosted_response", "dr_ridge"] + (
        ["tf_multihead"] if train_tf else []
    )
    selection, fitted, ctx, metrics = evaluate_and_select(
        data,
        budget_per_user,
        eligible,
        names=candidate_names(arms_list, eligible, per_user),
        folds=folds,
        seed=seed,
        z=gate_z,
        rollout_share=rollout_share,
        options={"uncertainty_penalty": uncertainty_penalty},
    )
    chosen = metrics["candidates"].get(selection.chosen, {})
    gate = {
        "passed": selection.status != "none",
        "status": selection.status,
        "chosen": selection.chosen,
        "leader": selection.leader,
        "estimator": "dr, out-of-fold",
        "candidate_value_per_row": chosen.get("value_per_row", 0.0),
        "candidate_stderr": chosen.get("stderr", 0.0),
        "candidate_ips_value_per_row": chosen.get("ips_value_per_row", 0.0),
        "candidate_ips_stderr": chosen.get("ips_stderr", 0.0),
        "rollout_share": selection.rollout_share,
        "message": selection.message,
        "description": metrics.get("chosen_description", "send nothing"),
    }
    rows = np.flatnonzero(data.evaluable) if data.evaluable.any() else np.arange(len(data.arm_index))
    exploration = fit_exploration_prior(
        arms_list,
        data.features.iloc[rows],
        tree_columns(data),
        ctx.gamma[rows],
        eligible,
        data.groups[rows],
        seed,
    )
    if exploration is not None:
        metrics["exploration_segments"] = [
            {
                "segment": rule or "everyone",
                "rows": int(exploration.rows[s]),
                "value_per_row": {a: float(exploration.mean[s, k]) for k, a in enumerate(arms_list) if a != NONE_ARM},
            }
            for s, rule in enumerate(exploration.rules)
        ]
    metrics["train_rows"] = int(len(data.arm_index))
    metrics["validation_rows"] = metrics["evaluated_rows"]
    metrics["production_model"] = selection.chosen
    return SelectedPolicy(
        arms=arms_list,
        window_days=[float(w) for w in data.arm_window],
        production=selection.chosen,
        gate=gate,
        selection_metrics=metrics,
        fitted=fitted,
        shared=ctx.shared,
        rollout_share=selection.rollout_share,
        exploration=exploration,
    )


def _number(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def render_response_card(payload: dict) -> str:
    """Markdown model card of the promo response part of one model version."""
    metrics = payload["selection_metrics"]
    gate = payload["gate"]
    lines = [
        f"# Promo policy card — run {payload.get('run_date')}",
        "",
        f"- Decision: **{gate.get('status')}** — {gate.get('message')}",
        f"- Policy: `{payload['production_model']}` — {gate.get('description')}",
        f"- Rows: {metrics.get('rows')} logged exposures, {metrics.get('evaluated_rows')} valued out-of-fold "
        f"({metrics.get('folds')} folds by user); training data sha256 `{payload.get('training_data_sha256')}`",
        f"- Arms: {', '.join(payload['arms'])}; outcome windows (days): "
        + ", ".join(f"{a}={w:g}" for a, w in zip(payload["arms"], payload["window_days"]) if a != NONE_ARM),
        "",
        "## Candidates (held-out incremental margin per user vs sending nothing)",
        "",
        "| candidate | complexity | DR value | stderr | lower bound | IPS value | offer share | policy |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, entry in sorted(metrics.get("candidates", {}).items(), key=lambda kv: (kv[1]["complexity"], kv[0])):
        lines.append(
            f"| {name} | {entry['complexity']} | {_number(entry['value_per_row'])} | {_number(entry['stderr'])} | "
            f"{_number(entry['lower_bound'])} | {_number(entry['ips_value_per_row'])} | {_number(entry['offer_share'], 2)} | "
            f"{entry.get('description', '')} |"
        )
    calibration = metrics.get("cost_calibration") or {}
    if calibration:
        lines += [
            "",
            "## Cost calibration (held-out rows no later offer cut: realised discount / predicted)",
            "",
            "| arm | rows | predicted | realised | ratio used |",
            "|---|---|---|---|---|",
        ]
        for arm, entry in calibration.items():
            lines.append(
                f"| {arm} | {entry['rows']} | {entry['predicted']:.1f} | {entry['realised']:.1f} | {entry['ratio']:.3f} |"
            )
        check = metrics.get("policy_cost_check") or {}
        if check:
            lines += [
                "",
                f"The published policy's own sends (uncut held-out rows whose logged arm it chose, weighted by 1 / propensity): "
                f"realised / predicted discount after the per-arm ratios {check['ratio']:.3f} on {check['rows']} rows; "
                f"every cost is multiplied by {check['applied']:.3f} (never less than 1).",
            ]
    lines += [
        "",
        "## Rule",
        "",
        "The candidate with the highest lower bound (value - z x stderr, the smaller of DR and IPS) leads; a simpler",
        "candidate within one standard error of its value and itself above 0 replaces it. Published when the bound is above 0; a positive but",
        "inconclusive best goes out as a staged rollout to a random share; otherwise nothing is sent (ml.selection).",
        "",
    ]
    return "\n".join(lines)
