"""Validation of ml.ope on real logged bandit data: the Open Bandit Dataset (OBD) sample.

The OBD (ZOZOTOWN fashion e-commerce, Saito et al. 2020) holds, per campaign (all, men,
women), a log of a uniform-random policy and a log of Bernoulli Thompson Sampling (BTS),
each recommending one of n_items items at each of 3 positions, with the click and the
logging policy's propensity of the shown item. The ``obp==0.4.1`` wheel ships a 10,000-row
sample of each log; this script downloads the wheel file only (obp is not installed nor
imported) and reads the CSVs out of the zip.

Check: the uniform-random policy's click rate estimated off-policy from the BTS log (IPS,
SNIPS, DR) against its on-policy ground truth, the mean click of the random log. A
context is (user features, position); the evaluation policy picks one of the n_items items
uniformly, so pi(logged item | x) = 1 / n_items on every row. DR's reward model is the
per-(item, position) click rate of the BTS log, shrunk towards the position's click rate
and cross-fitted over two folds (each half is scored by the model fitted on the other).
BTS is context-free, so the click rate of an (item, position) cell of its log is unbiased
for that cell.

The reverse direction (BTS's value from the random log) needs BTS's action probabilities of
every item on the random log's rows; the CSVs carry only the logged item's propensity in the
BTS log (and it changes over the week as BTS was updated), so it is not done here.

    .venv/bin/python benchmarks/validate_ope_obd.py            # prints the table, writes docs
    .venv/bin/python benchmarks/validate_ope_obd.py --no-docs  # prints only

The wheel is cached in --cache-dir (default $PROMO_OBD_CACHE_DIR, else
~/.cache/promoflow/obd); it is downloaded with pip when absent.
"""

from __future__ import annotations

import argparse
import io
import math
import os
import re
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ml.ope import PolicyEvaluation, PolicyValueEstimate, evaluate_policy  # noqa: E402

OBP_VERSION = "0.4.1"
WHEEL_NAME = f"obp-{OBP_VERSION}-py3-none-any.whl"
CAMPAIGNS = ("all", "men", "women")
DOC_PATH = ROOT / "docs" / "off_policy_evaluation.md"
# Prior strength (in impressions) of the shrinkage of a cell's click rate towards its
# position's: clicks are rare (~0.5%), so a cell's raw rate over a few dozen rows is mostly 0.
SHRINKAGE_IMPRESSIONS = 200.0
CROSS_FIT_SEED = 0
# The clipped variant's weight cap, fixed before looking at its results: a row counts at most
# as much as 50 rows the uniform policy would have logged (ml.training_data clips at 20).
CLIPPED_MAX_WEIGHT = 50.0
TABLE_START = "<!-- obd-table:start -->"
TABLE_END = "<!-- obd-table:end -->"


def default_cache_dir() -> Path:
    if os.environ.get("PROMO_OBD_CACHE_DIR"):
        return Path(os.environ["PROMO_OBD_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "promoflow" / "obd"


def obd_wheel(cache_dir: Path, download: bool = True, timeout_s: float = 300) -> Path:
    """Path of the obp wheel in ``cache_dir``, downloaded with pip (no dependencies) when absent."""
    wheel = cache_dir / WHEEL_NAME
    if wheel.exists() or not download:
        if not wheel.exists():
            raise FileNotFoundError(f"{wheel}: not in the cache; run without --no-download or `make validate-ope`")
        return wheel
    cache_dir.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        f"obp=={OBP_VERSION}",
        "-d",
        str(cache_dir),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
    if done.returncode != 0 or not wheel.exists():
        raise RuntimeError(f"could not download {WHEEL_NAME} with `{' '.join(command)}`:\n{done.stderr[-2000:]}")
    return wheel


def read_log(wheel: Path, policy: str, campaign: str) -> pd.DataFrame:
    """One OBD sample log (policy 'random' or 'bts') of one campaign, rows in time order."""
    with zipfile.ZipFile(wheel) as archive:
        data = archive.read(f"obp/dataset/obd/{policy}/{campaign}/{campaign}.csv")
        items = archive.read(f"obp/dataset/obd/{policy}/{campaign}/item_context.csv")
    log = pd.read_csv(io.BytesIO(data), index_col=0)
    log.attrs["n_items"] = len(pd.read_csv(io.BytesIO(items), index_col=0))
    return log


def cross_fitted_cell_rates(log: pd.DataFrame, n_items: int, n_folds: int = 2) -> np.ndarray:
    """q_hat [n_rows, n_items]: each row's click rate of every item at the row's position.

    Per (item, position) the click rate of the other folds' rows, shrunk towards the other
    folds' click rate of that position by SHRINKAGE_IMPRESSIONS pseudo-impressions.
    """
    rng = np.random.default_rng(CROSS_FIT_SEED)
    fold = rng.permutation(len(log)) % n_folds
    item = log["item_id"].to_numpy()
    position = log["position"].to_numpy()
    positions = np.unique(position)
    position_index = np.searchsorted(positions, position)
    click = log["click"].to_numpy(dtype=np.float64)
    q_hat = np.empty((len(log), n_items))
    for k in range(n_folds):
        fit = fold != k
        shape = (positions.size, n_items)
        clicks = np.zeros(shape)
        shown = np.zeros(shape)
        np.add.at(clicks, (position_index[fit], item[fit]), click[fit])
        np.add.at(shown, (position_index[fit], item[fit]), 1.0)
        position_rate = clicks.sum(axis=1, keepdims=True) / np.maximum(shown.sum(axis=1, keepdims=True), 1.0)
        rate = (clicks + SHRINKAGE_IMPRESSIONS * position_rate) / (shown + SHRINKAGE_IMPRESSIONS)
        q_hat[fold == k] = rate[position_index[fold == k]]
    return q_hat


@dataclass(frozen=True)
class CampaignResult:
    campaign: str
    n_items: int
    truth: float
    truth_stderr: float
    n_random: int
    evaluation: PolicyEvaluation  # unclipped weights
    clipped: PolicyEvaluation  # weights clipped at CLIPPED_MAX_WEIGHT

    def estimates(self) -> dict[str, PolicyValueEstimate]:
        """Estimates by label: IPS, SNIPS, DR, then the clipped ones ("IPS clip 50", ...)."""
        clip = f"clip {CLIPPED_MAX_WEIGHT:g}"
        result = {}
        for suffix, evaluation in (("", self.evaluation), (f" {clip}", self.clipped)):
            result.update(
                {f"IPS{suffix}": evaluation.ips, f"SNIPS{suffix}": evaluation.snips, f"DR{suffix}": evaluation.dr}
            )
        return result

    def relative_error(self, name: str) -> float:
        return abs(self.estimates()[name].estimate - self.truth) / self.truth

    def z_score(self, name: str) -> float:
        """(estimate - truth) / sqrt(se_estimate^2 + se_truth^2): the two logs are independent."""
        estimate = self.estimates()[name]
        return (estimate.estimate - self.truth) / math.hypot(estimate.stderr, self.truth_stderr)


def validate_campaign(wheel: Path, campaign: str) -> CampaignResult:
    """Uniform-random policy's click rate: on-policy truth vs IPS/SNIPS/DR from the BTS log."""
    random_log = read_log(wheel, "random", campaign)
    bts_log = read_log(wheel, "bts", campaign)
    n_items = bts_log.attrs["n_items"]
    clicks = random_log["click"].to_numpy(dtype=np.float64)
    truth = float(clicks.mean())
    truth_stderr = float(clicks.std(ddof=1) / math.sqrt(clicks.size))
    logged = dict(
        arms=bts_log["item_id"].to_numpy(),
        rewards=bts_log["click"].to_numpy(dtype=np.float64),
        propensities=bts_log["propensity_score"].to_numpy(dtype=np.float64),
        target_policy=np.full((len(bts_log), n_items), 1.0 / n_items),
        reward_model=cross_fitted_cell_rates(bts_log, n_items),
    )
    return CampaignResult(
        campaign,
        n_items,
        truth,
        truth_stderr,
        clicks.size,
        evaluation=evaluate_policy(**logged),
        clipped=evaluate_policy(**logged, max_weight=CLIPPED_MAX_WEIGHT),
    )


def markdown_table(results: list[CampaignResult]) -> str:
    lines = [
        "| campaign | items | truth: random log's click rate ± se | estimator | estimate ± se (BTS log) | ESS | relative error | z |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        for name, estimate in result.estimates().items():
            lines.append(
                f"| {result.campaign} | {result.n_items} | {result.truth:.5f} ± {result.truth_stderr:.5f} | {name} | "
                f"{estimate.estimate:.5f} ± {estimate.stderr:.5f} | {estimate.effective_sample_size:,.0f} | "
                f"{result.relative_error(name):.3f} | {result.z_score(name):+.2f} |"
            )
    return "\n".join(lines)


def write_doc_table(table: str, path: Path = DOC_PATH, start: str = TABLE_START, end: str = TABLE_END) -> None:
    """Replace the measured table between the ``start`` and ``end`` markers of a doc."""
    text = path.read_text()
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.DOTALL)
    if not pattern.search(text):
        raise RuntimeError(f"{path}: no {start} ... {end} markers to put the table between")
    path.write_text(pattern.sub(lambda _: f"{start}\n{table}\n{end}", text))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache-dir", type=Path, default=default_cache_dir())
    parser.add_argument("--no-download", action="store_true", help="fail if the wheel is not cached")
    parser.add_argument(
        "--no-docs", action="store_true", help=f"do not rewrite the table in {DOC_PATH.relative_to(ROOT)}"
    )
    args = parser.parse_args(argv)

    wheel = obd_wheel(args.cache_dir, download=not args.no_download)
    results = [validate_campaign(wheel, campaign) for campaign in CAMPAIGNS]
    table = markdown_table(results)
    print(
        f"OBD sample from {wheel}: uniform-random policy's click rate, truth from the random log, "
        "estimates from the BTS log\n"
    )
    print(table)
    if not args.no_docs:
        write_doc_table(table)
        print(f"\ntable written to {DOC_PATH.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
