"""``make validate-uplift``: the nightly candidate-and-selection code on a real randomised experiment.

Hillstrom's 2008 e-mail experiment (``../shared/data/hillstrom/``, 64,000 customers randomised
with probability 1/3 each to a men's e-mail, a women's e-mail or none). Value of a customer =
0.35 x spend in the two weeks after the send - 0.05 per e-mail; ``No E-Mail`` is ``none``.
For each of ``--splits`` random 50/50 splits, ``ml.selection.evaluate_and_select`` (what
``train_model`` runs each night) values every candidate out-of-fold on the first half, picks by
its rule and refits; every candidate and the selected policy are then valued on the other
half by IPS (the propensities are known), as incremental value per customer against sending
nothing. Two settings: no budget, and a capacity cap of 25% of customers.

Prints per setting each candidate's mean +- sd over splits, the selected policy's mean, its
paired difference against the best blanket policy, and writes
``{data_dir}/evaluate/validate_uplift.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ml.selection import PolicyData, evaluate_and_select, fit_candidate, stable_uniform

ARMS = ["none", "mens", "womens"]
TREATMENT = {"No E-Mail": "none", "Mens E-Mail": "mens", "Womens E-Mail": "womens"}
NUMERIC = ["recency", "history", "mens", "womens", "newbie"]
CATEGORICAL = ["zip_code", "channel"]
SPEND_SHARE, EMAIL_COST = 0.35, 0.05
DEFAULT_CSV = Path(__file__).resolve().parents[2] / "shared" / "data" / "hillstrom" / "hillstrom.csv"


def load(csv: Path) -> PolicyData:
    frame = pd.read_csv(csv)
    unknown = set(frame["treatment"]) - set(TREATMENT)
    if unknown:
        raise SystemExit(f"{csv}: unexpected treatment values {sorted(unknown)}; expected {sorted(TREATMENT)}")
    arm_index = frame["treatment"].map(TREATMENT).map(ARMS.index).to_numpy()
    n = len(frame)
    return PolicyData(
        features=frame[NUMERIC + CATEGORICAL].reset_index(drop=True),
        arms=ARMS,
        arm_index=arm_index,
        propensity=np.full(n, 1 / 3),
        converted=frame["conversion"].to_numpy(),
        margin=SPEND_SHARE * frame["spend"].to_numpy(),
        discount=np.zeros(n),
        window_days=np.ones(n),
        arm_window=np.array([0.0, 1.0, 1.0]),
        send_cost=np.array([0.0, EMAIL_COST, EMAIL_COST]),
        numeric_features=NUMERIC,
        categorical_features=CATEGORICAL,
        groups=np.arange(n),
        evaluable=np.ones(n, dtype=bool),
        budget_cost="sends",
    )


def ips_terms(data: PolicyData, chosen: np.ndarray) -> np.ndarray:
    """Per customer, the IPS term of ``chosen``'s incremental value vs sending nothing."""
    y, a, p = data.margin, data.arm_index, data.propensity
    return np.where(chosen != 0, (a == chosen) * y / p - (a == 0) * y / p - EMAIL_COST, 0.0)


def ips_value(data: PolicyData, chosen: np.ndarray) -> float:
    """Incremental value per customer of ``chosen`` vs sending nothing, by IPS."""
    return float(ips_terms(data, chosen).mean())


def run_setting(
    data: PolicyData, cap: float | None, splits: int, seed: int, only=None, dump: Path | None = None
) -> dict:
    n = len(data.arm_index)
    values: dict[str, list[float]] = {}
    selected, selected_names, blanket_best = [], [], []
    for s in range(splits) if only is None else only:
        started = time.perf_counter()
        order = np.random.default_rng(seed + s).permutation(n)
        train, test = data.take(np.sort(order[: n // 2])), data.take(np.sort(order[n // 2 :]))
        selection, fitted, ctx, metrics = evaluate_and_select(train, cap, seed=s, refit=True)
        budget = None if cap is None else cap * len(test.arm_index)
        cost = ctx.shared.cost(test.features, test)
        eligible = np.ones((len(test.arm_index), len(ARMS)), dtype=bool)
        tiebreak = stable_uniform([str(i) for i in range(len(test.arm_index))], f"tie-{s}")
        held_out = {}
        for name in metrics["candidates"]:
            chosen = fit_candidate(name, ctx).decide(test.features, cost, budget, eligible, tiebreak)
            held_out[name] = ips_terms(test, chosen)
            values.setdefault(name, []).append(float(held_out[name].mean()))
        if dump is not None:  # every candidate's out-of-fold terms and held-out terms, to study the rule
            import pickle

            dump.mkdir(parents=True, exist_ok=True)
            oof = {
                k: (r.value.row_terms.astype(np.float32), r.ips.row_terms.astype(np.float32), r.offer_share)
                for k, r in selection.results.items()
            }
            record = {
                "metrics": metrics,
                "oof": oof,
                "held_out": {k: v.astype(np.float32) for k, v in held_out.items()},
            }
            (dump / f"cap-{cap}-split-{s}.pkl").write_bytes(pickle.dumps(record))
        chosen = (
            np.zeros(len(test.arm_index), dtype=np.int64)
            if fitted is None
            else fitted.decide(test.features, cost, budget, eligible, tiebreak)
        )
        if selection.status == "rollout":  # the candidate for a random share, none for the rest
            rolled = stable_uniform([str(i) for i in range(len(chosen))], f"rollout-{s}") < selection.rollout_share
            chosen = np.where(rolled, chosen, 0)
        selected.append(ips_value(test, chosen))
        selected_names.append(f"{selection.status}:{selection.chosen}")
        blanket_best.append(max(values["blanket:mens"][-1], values["blanket:womens"][-1]))
        print(
            f"  cap={cap} split {s}: selected {selected_names[-1]} {selected[-1]:+.4f}; "
            + ", ".join(f"{k} {v[-1]:+.4f}" for k, v in values.items())
            + f" ({time.perf_counter() - started:.0f} s)",
            flush=True,
        )
    means = {k: float(np.mean(v)) for k, v in values.items()}
    best_blanket = max((k for k in means if k.startswith("blanket:")), key=means.get)
    diff = np.array(selected) - np.array(values[best_blanket])
    return {
        "cap": cap,
        "splits": len(selected),
        "candidates": {k: {"mean": float(np.mean(v)), "sd": float(np.std(v, ddof=1))} for k, v in values.items()},
        "selected": {
            "mean": float(np.mean(selected)),
            "sd": float(np.std(selected, ddof=1)),
            "picks": pd.Series(selected_names).value_counts().to_dict(),
        },
        "best_blanket": {"name": best_blanket, "mean": means[best_blanket]},
        "selected_minus_best_blanket": {"mean": float(diff.mean()), "sd": float(diff.std(ddof=1))},
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", type=Path, default=Path(os.environ.get("HILLSTROM_CSV", DEFAULT_CSV)))
    parser.add_argument("--splits", type=int, default=20)
    parser.add_argument("--seed", type=int, default=2008)
    parser.add_argument("--caps", nargs="+", default=["none", "0.25"])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--only", type=int, nargs="+", default=None, help="run only these split indices")
    parser.add_argument("--dump", type=Path, default=None, help="pickle each split's per-candidate terms here")
    args = parser.parse_args(argv)
    data = load(args.csv)
    report = {"data": str(args.csv), "rows": int(len(data.arm_index)), "settings": {}}
    for cap_text in args.caps:
        cap = None if cap_text == "none" else float(cap_text)
        key = "unconstrained" if cap is None else f"cap_{cap:g}"
        report["settings"][key] = run_setting(data, cap, args.splits, args.seed, args.only, args.dump)
    for key, setting in report["settings"].items():
        print(f"\n{key} ({setting['splits']} splits; incremental value per customer on the held-out halves, IPS)")
        for name, entry in sorted(setting["candidates"].items(), key=lambda kv: -kv[1]["mean"]):
            print(f"  {name:24s} {entry['mean']:+.4f} ± {entry['sd']:.4f}")
        sel, diff = setting["selected"], setting["selected_minus_best_blanket"]
        print(f"  {'SELECTED':24s} {sel['mean']:+.4f} ± {sel['sd']:.4f}  picks {sel['picks']}")
        print(f"  selected - {setting['best_blanket']['name']}: {diff['mean']:+.4f} ± {diff['sd']:.4f}")
    from promoflow.settings import Settings

    out = args.out or Path(Settings.from_env().data_dir) / "evaluate" / "validate_uplift.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, sort_keys=True))
    print(f"\nreport: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
