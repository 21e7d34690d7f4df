"""Run promo_nightly for one date in this process and SIGKILL it at a chosen point.

Used by test_crash_recovery_e2e.py (not collected by pytest). ``point`` is the name
of a function in ``promoflow.stages`` (killed after the stage did its work, before it
reports success) or ``publish_mid_transaction`` (killed after the new rows are
inserted into promo_assignments but before the transaction commits).
"""

from __future__ import annotations

import os
import signal
import sys
from datetime import UTC, datetime


def die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def arm(point: str) -> None:
    if point == "publish_mid_transaction":
        from promoflow import warehouse

        original = warehouse.Warehouse._insert_arrow

        def insert_then_die(self, qualified, data):
            original(self, qualified, data)
            if qualified.endswith(".promo_assignments"):
                die()

        warehouse.Warehouse._insert_arrow = insert_then_die
        return
    from promoflow import stages

    original = getattr(stages, point)

    def run_then_die(*args, **kwargs):
        original(*args, **kwargs)
        die()

    setattr(stages, point, run_then_die)


def main(point: str, day: str) -> int:
    arm(point)
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).dags["promo_nightly"]
    run = dag.test(logical_date=datetime.fromisoformat(day).replace(tzinfo=UTC))
    print(f"not killed: run ended {run.state}")
    return 3


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
