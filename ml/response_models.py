"""Train both promo response models, pick the production one on held-out data, gate it.

Candidates (both fitted on the earliest ``1 - validation_share`` of the time-ordered logged
exposures):

* ``tf_multihead`` — :mod:`ml.response_model`, the TensorFlow multi-head network
  (P(order), margin and discount per arm);
* ``dr_ridge`` — :mod:`ml.uplift`, doubly robust ridge uplift with bootstrap uncertainty.

Selection and gate use the latest ``validation_share`` of rows, which neither model saw:
each model's greedy policy (best positive conservative score per row, no budget) is valued
by :func:`ml.evaluation.incremental_policy_value` (doubly robust, incremental margin per
logged row vs sending nothing; its reward model is a per-arm outcome regression cross-fitted
on the held-out rows themselves, :func:`crossfit_reward_model`). The model whose policy has the higher lower confidence bound
(estimate - gate_z standard errors) is production; per-arm Qini /
AUUC and the calibration of P(order) are reported for both.

Off-policy gate: the production policy is published only if its value beats ``none`` (exactly
0 here) by ``gate_z`` standard errors — by the DR estimate and by the IPS estimate of the same
contrast (no reward model) — and does not fall short of the last published policy
(same rows, paired) beyond ``gate_tolerance`` (``ml.off_policy.policy_gate``). Otherwise the
night falls back to sending nothing (exploration aside), and the run summary says why.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ml.evaluation import expected_calibration_error, greedy_policy, incremental_policy_value, qini_by_arm
from ml.off_policy import PolicyValueEstimate, policy_gate
from ml.predictions import NONE_ARM
from ml.training_data import time_ordered_split
from ml.uplift import ArmScores, LoggedOutcomes, UpliftConfig, UpliftModel, outcome_coefficients, train_uplift_model

log = logging.getLogger(__name__)

SELECTION_FILE = "production.json"
UPLIFT_DIR = "dr_ridge"
TF_DIR = "tf_multihead"
VALIDATION_SHARE = 0.2
CANDIDATES = ("dr_ridge", "tf_multihead")
REWARD_FOLDS = 5


def crossfit_reward_model(design: np.ndarray, logged: LoggedOutcomes, folds: int = REWARD_FOLDS, seed: int = 0, penalty: float = 100.0) -> np.ndarray:
    """[rows, arms] reward model (margin per day) for doubly robust values on held-out rows,
    cross-fitted on those rows: each fold's predictions come from a per-arm outcome
    regression (``ml.uplift.outcome_coefficients``) fitted on the other folds.

    Not on the training rows: a reward model fitted there shares the candidate policies'
    own noise (the policy picks an arm where the training rows happened to favour it, and
    so does the reward model), which biased DR towards the policy — seed 101 of the demo:
    DR +0.788 ± 0.334 per user against a truth of −0.077. Fitted on the other held-out
    folds it is independent of each row's outcome, which is all DR needs to stay unbiased.
    """
    n = len(logged.arm_index)
    q = np.zeros((n, len(logged.arms)))
    if n < 2 * folds:
        return q  # too few rows to cross-fit: the IPS contrast (q = 0) is still unbiased
    fold = np.random.default_rng(seed).permutation(n) % folds
    for k in range(folds):
        fit = fold != k
        coefficients, _ = outcome_coefficients(design[fit], logged.margin_per_day[fit], logged.arm_index[fit], len(logged.arms), penalty)
        q[~fit] = design[~fit] @ coefficients
    return q


def tf_arm_scores(
    predictions, window_days: np.ndarray, control_window: float, logged_window_days: np.ndarray | None = None
) -> ArmScores:
    """ArmScores from the TF model. It predicts each arm's margin over the windows it was
    trained on, which differ from the catalogue windows scoring needs: every arm's margin is
    turned into a rate per day (over its mean logged window, ``logged_window_days``; the
    control's is ``control_window``) and the incremental margin is
    ``window_days[a] * (rate_a - rate_none)``, as ``ml.uplift`` does. Training rows' outcomes
    are censored at the next offer (``fct_promo_outcomes.outcome_days``), so the logged windows
    are shorter than the catalogue's. Without ``logged_window_days`` (a model stored before
    censoring), an arm's logged window is taken to be its catalogue window."""
    none = predictions.none_index
    window = np.asarray(window_days, dtype=np.float64)
    logged = window if logged_window_days is None else np.asarray(logged_window_days, dtype=np.float64)
    arm_ratio = np.where((window > 0) & (logged > 0), window / np.where(logged > 0, logged, 1.0), 1.0)
    ratio = np.where(window > 0, window / control_window, 1.0)
    incremental = predictions.expected_margin * arm_ratio[None, :] - predictions.expected_margin[:, none : none + 1] * ratio[None, :]
    incremental[:, none] = 0.0
    cost = predictions.expected_cost.copy()
    cost[:, none] = 0.0
    return ArmScores(list(predictions.arms), incremental, cost)


@dataclass
class PolicyModel:
    """The stored result of one night's training: both models, which one is production, the gate."""

    arms: list[str]
    window_days: list[float]
    control_window: float  # mean logged window (days) of the training rows of 'none'
    production: str
    gate: dict
    selection_metrics: dict
    uplift: UpliftModel | None = None
    tf_model: object | None = None
    # per arm (arms order), mean logged window (days) of its training rows; None = catalogue windows
    logged_window_days: list[float] | None = None

    @property
    def gate_passed(self) -> bool:
        return bool(self.gate.get("passed"))

    def score(self, features: pd.DataFrame, which: str | None = None) -> ArmScores:
        which = which or self.production
        if which == "dr_ridge":
            return self.uplift.score(features)
        predictions = self.tf_model.predict(features)
        logged = None if self.logged_window_days is None else np.array(self.logged_window_days)
        return tf_arm_scores(predictions, np.array(self.window_days), self.control_window, logged)

    def save(self, local_dir: str | Path, *, run_date: date | None = None, data_hash: str | None = None) -> Path:
        local_dir = Path(local_dir)
        local_dir.mkdir(parents=True, exist_ok=True)
        self.uplift.save(local_dir / UPLIFT_DIR)
        if self.tf_model is not None:
            self.tf_model.save(local_dir / TF_DIR)
        payload = {
            "arms": self.arms,
            "window_days": self.window_days,
            "control_window": self.control_window,
            "logged_window_days": self.logged_window_days,
            "production_model": self.production,
            "gate": self.gate,
            "selection_metrics": self.selection_metrics,
            "run_date": run_date.isoformat() if run_date else None,
            "training_data_sha256": data_hash,
        }
        (local_dir / SELECTION_FILE).write_text(json.dumps(payload, indent=2, sort_keys=True, default=str))
        (local_dir / "metrics.json").write_text(json.dumps(self.selection_metrics, indent=2, sort_keys=True, default=str))
        (local_dir / "model_card.md").write_text(render_response_card(payload))
        return local_dir


def load(local_dir: str | Path) -> PolicyModel:
    """Load a stored version written by :meth:`PolicyModel.save`."""
    local_dir = Path(local_dir)
    selection_path = local_dir / SELECTION_FILE
    if not selection_path.exists():
        raise FileNotFoundError(f"{selection_path}: missing; this model version predates the selection format")
    payload = json.loads(selection_path.read_text())
    tf_model = None
    if payload["production_model"] == "tf_multihead" and (local_dir / TF_DIR).exists():
        from ml.response_model import ResponseModel

        tf_model = ResponseModel.load(local_dir / TF_DIR)
    return PolicyModel(
        arms=payload["arms"],
        window_days=payload["window_days"],
        control_window=payload["control_window"],
        logged_window_days=payload.get("logged_window_days"),
        production=payload["production_model"],
        gate=payload["gate"],
        selection_metrics=payload["selection_metrics"],
        uplift=UpliftModel.load(local_dir / UPLIFT_DIR),
        tf_model=tf_model,
    )


def _zero_policy(like: PolicyValueEstimate) -> PolicyValueEstimate:
    """The 'none' policy's incremental value on the same rows: exactly 0."""
    return PolicyValueEstimate("dr", 0.0, 0.0, like.n, like.effective_sample_size, np.zeros(like.n), like.log_id)


def train_and_select(
    frame: pd.DataFrame,
    arms: Sequence[str],
    window_days: Mapping[str, float],
    active: Mapping[str, bool] | None = None,
    *,
    seed: int = 0,
    uncertainty_penalty: float = 1.5,
    gate_z: float = 1.645,
    gate_tolerance: float = 0.02,
    previous: PolicyModel | None = None,
    validation_share: float = VALIDATION_SHARE,
    train_tf: bool = True,
    validation_candidates: np.ndarray | None = None,
) -> PolicyModel:
    """Fit both candidates on the early rows, value their policies on the late rows, gate.

    ``validation_candidates`` (bool per row, time-ordered frame) limits the held-out rows to
    exposures whose *every* arm's window has closed: the latest ``validation_share`` of those
    validate, everything else trains. Without it the arms' rows of the last days would be
    unequally represented (short windows mature first) and the propensities would no longer
    describe the held-out sample.
    """
    if validation_candidates is None:
        train_rows, validation_rows = time_ordered_split(len(frame), validation_share)
    else:
        candidates = np.flatnonzero(np.asarray(validation_candidates, dtype=bool))
        n_validation = int(round(len(candidates) * validation_share))
        validation_rows = candidates[len(candidates) - n_validation :] if n_validation else candidates[:0]
        train_rows = np.setdiff1d(np.arange(len(frame)), validation_rows)
    train, validation = frame.iloc[train_rows].reset_index(drop=True), frame.iloc[validation_rows].reset_index(drop=True)
    uplift = train_uplift_model(train, arms, window_days, seed=seed, config=UpliftConfig(uncertainty_penalty=uncertainty_penalty))
    arms = uplift.arms
    none = arms.index(NONE_ARM)
    windows = uplift.window_days
    # The TF model learns margins over the logged windows (censored at the next offer, so
    # shorter than the catalogue's and fractional): the mean logged window per arm turns them
    # into rates per day (tf_arm_scores). The mean, not the median: E[margin] = rate x E[days].
    logged_days = pd.to_numeric(train["window_days"]).groupby(train["promo_id"]).mean()
    control_window = float(logged_days.get(NONE_ARM, np.nan))
    logged_windows = [
        float(logged_days[arm]) if arm in logged_days.index else (control_window if arm == NONE_ARM else float(window))
        for arm, window in zip(arms, windows)
    ]
    model = PolicyModel(
        arms, windows.tolist(), control_window, "dr_ridge", {}, {}, uplift=uplift, logged_window_days=logged_windows
    )

    tf_error = None
    if train_tf:
        try:
            from ml.response_model import train_response_model

            model.tf_model = train_response_model(train, [a for a in arms if a != NONE_ARM], seed=seed, deterministic=True)
        except (ValueError, RuntimeError) as error:  # too little data for its own validation split, etc.
            tf_error = str(error)
            log.warning("TF response model not trained: %s", error)

    eligible = np.array([arm == NONE_ARM or (active or {}).get(arm, True) for arm in arms])
    metrics: dict = {"train_rows": int(len(train)), "validation_rows": int(len(validation)), "tf_error": tf_error, "models": {}}
    values: dict[str, PolicyValueEstimate] = {}
    chosen_by: dict[str, np.ndarray] = {}
    if len(validation) >= 2:
        logged = LoggedOutcomes.from_frame(validation, arms)
        q = crossfit_reward_model(uplift.design(validation), logged, seed=seed)
        for name in CANDIDATES:
            if name == "tf_multihead" and model.tf_model is None:
                continue
            scores = model.score(validation, which=name)
            chosen = greedy_policy(scores.decision_margin, none, np.broadcast_to(eligible, scores.decision_margin.shape))
            value = incremental_policy_value(chosen, logged, windows, q)
            values[name], chosen_by[name] = value, chosen
            per_day = np.divide(scores.decision_margin, np.where(windows > 0, windows, 1.0)[None, :])
            entry = {
                "policy_value_per_row": value.estimate,
                "policy_value_stderr": value.stderr,
                "offer_share": float(np.mean(chosen != none)),
                "qini": qini_by_arm(per_day, logged),
            }
            if name == "tf_multihead":
                p_order = model.tf_model.predict(validation).p_order[np.arange(len(validation)), logged.arm_index]
                converted = pd.to_numeric(validation["converted"]).to_numpy(dtype=np.float64)
                entry["p_order_calibration"] = expected_calibration_error(p_order, converted)
                entry["training_metrics"] = model.tf_model.training_metrics
            metrics["models"][name] = entry
    if values:
        # The lower confidence bound, not the point estimate: on a few thousand noisy rows the
        # model whose policy merely got lucky on the validation split must not win.
        model.production = max(values, key=lambda name: (values[name].lower_bound(gate_z), name == "dr_ridge"))
        candidate = values[model.production]
        baselines = {}
        if previous is not None:
            previous_scores = previous.score(validation)
            if list(previous_scores.arms) == arms:
                chosen = greedy_policy(previous_scores.decision_margin, none, np.broadcast_to(eligible, previous_scores.decision_margin.shape))
                baselines["last_published"] = incremental_policy_value(chosen, logged, windows, q)
        decision = policy_gate(candidate, baselines, tolerance=gate_tolerance, z=gate_z) if baselines else None
        # The same contrast without a reward model (IPS). Both are unbiased; the gate asks both
        # to clear sending nothing, a deliberately conservative rule: the money is real, and a
        # reward model of a few hundred rows per arm can still mislead the DR direct term.
        ips = incremental_policy_value(chosen_by[model.production], logged, windows, np.zeros_like(q))
        beats_none = candidate.estimate > gate_z * candidate.stderr and ips.estimate > gate_z * ips.stderr
        passed = beats_none and (decision is None or decision.passed)
        if not beats_none:
            message = (
                f"fallback to 'none': the {model.production} policy's estimated incremental margin "
                f"{candidate.estimate:.3f} ± {candidate.stderr:.3f} per user (DR; IPS {ips.estimate:.3f} ± {ips.stderr:.3f}) "
                f"does not beat sending nothing by {gate_z:g} standard errors on {candidate.n} held-out exposures"
            )
        elif decision is not None and not decision.passed:
            message = "fallback to 'none': " + decision.message
        else:
            message = (
                f"published the {model.production} policy: estimated incremental margin {candidate.estimate:.3f} ± "
                f"{candidate.stderr:.3f} per user on {candidate.n} held-out exposures"
            )
        model.gate = {
            "passed": bool(passed),
            "estimator": "dr",
            "candidate_value_per_row": candidate.estimate,
            "candidate_stderr": candidate.stderr,
            "candidate_ips_value_per_row": ips.estimate,
            "candidate_ips_stderr": ips.stderr,
            "baselines": {"none": 0.0} | {name: v.estimate for name, v in baselines.items()},
            "message": message,
        }
    else:
        model.gate = {"passed": False, "message": "fallback to 'none': no held-out exposures to evaluate a policy on"}
    metrics["production_model"] = model.production
    model.selection_metrics = metrics
    return model


def _number(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def render_response_card(payload: dict) -> str:
    """Markdown model card of the promo response part of one model version."""
    metrics = payload["selection_metrics"]
    gate = payload["gate"]
    lines = [
        f"# Promo response model card — run {payload.get('run_date')}",
        "",
        f"- Production model: **{payload['production_model']}** (chosen by the doubly robust value of its greedy policy "
        "on the latest held-out exposures; see below). Candidates: `dr_ridge` (ml.uplift), `tf_multihead` (ml.response_model).",
        f"- Training rows: {metrics.get('train_rows')} (earliest exposures), held-out rows: {metrics.get('validation_rows')} (latest).",
        f"- Training data sha256: `{payload.get('training_data_sha256')}`",
        f"- Arms: {', '.join(payload['arms'])}; catalogue outcome windows (days): "
        + ", ".join(f"{a}={w:g}" for a, w in zip(payload["arms"], payload["window_days"]) if a != NONE_ARM),
        "- Mean logged outcome window of the training rows (days; cut at the user's next offer): "
        + (
            ", ".join(f"{a}={w:.2f}" for a, w in zip(payload["arms"], payload["logged_window_days"]))
            if payload.get("logged_window_days")
            else f"none={payload['control_window']:g}"
        )
        + "; the TF model's margins are over these windows, its scores rescale them to the catalogue windows.",
        f"- Off-policy gate: **{'passed' if gate.get('passed') else 'fell back'}** — {gate.get('message')}",
        "",
        "## Held-out comparison",
        "",
        "| model | policy value / user (DR) | stderr | offer share | P(order) ECE |",
        "|---|---|---|---|---|",
    ]
    for name, entry in metrics.get("models", {}).items():
        ece = entry.get("p_order_calibration", {}).get("ece")
        lines.append(
            f"| {name} | {_number(entry['policy_value_per_row'])} | {_number(entry['policy_value_stderr'])} | "
            f"{_number(entry['offer_share'], 2)} | {_number(ece)} |"
        )
    lines += ["", "## Per-arm Qini coefficient / AUUC on held-out rows (margin per day; > 0 ranks responders better than chance)", ""]
    names = list(metrics.get("models", {}))
    if names:
        lines.append("| arm | " + " | ".join(f"{n} Qini | {n} AUUC" for n in names) + " |")
        lines.append("|---|" + "---|---|" * len(names))
        arms = [a for a in payload["arms"] if a != NONE_ARM]
        for arm in arms:
            cells = []
            for n in names:
                q = metrics["models"][n]["qini"].get(arm, {})
                cells += [_number(q.get("qini"), 4), _number(q.get("auuc"), 4)]
            lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    if metrics.get("tf_error"):
        lines += ["", f"TF model not trained: {metrics['tf_error']}"]
    lines += [
        "",
        "## Limits",
        "",
        "- Uplift is learnt from randomised exposures only; arms never logged cannot be chosen.",
        "- Values are per logged exposure on a few hundred to thousand rows: standard errors are",
        "  of the same order as the values; the gate falls back to 'none' unless the policy beats it.",
        "",
    ]
    return "\n".join(lines)
