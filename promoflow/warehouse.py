"""Warehouse access: DuckDB (embedded default) or Postgres, same calls.

Loads validated lake data into schema ``raw`` (snapshots replaced, dated
partitions delete+insert inside one transaction, so a re-run never duplicates
and a crash leaves the previous version), and owns the contract's output table
``promo_assignments`` in the default schema.

Concurrency: on Postgres every replace takes a transaction-scoped advisory lock
on what it replaces (a table, a table's partition, a run date), so two runs of
the same date queue instead of both deleting nothing and both inserting (which
would duplicate rows), and runs of different dates proceed side by side; DDL
(``create ... if not exists``) is serialised on one lock. DuckDB allows one
writer process per file: a second one gets :class:`WarehouseUnavailableError`
saying the file is busy.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from promoflow import contract
from promoflow.settings import Settings

log = logging.getLogger(__name__)


class WarehouseUnavailableError(RuntimeError):
    """The warehouse cannot be reached (or was lost mid-transaction): nothing of the failed step was written."""


def _redacted(url: str) -> str:
    parsed = urlparse(url)
    if parsed.password:
        return url.replace(f":{parsed.password}@", ":***@")
    return url


def _lock_key(name: str) -> int:
    """A stable signed 64-bit advisory lock key for ``name``."""
    return int.from_bytes(hashlib.sha256(f"promoflow:{name}".encode()).digest()[:8], "big", signed=True)


RAW_SCHEMA = "raw"
ANALYTICS_SCHEMA = "analytics"

# The contract's output tables, in column order: column -> SQL type.
PROMO_ASSIGNMENTS_COLUMNS: dict[str, str] = contract.warehouse_columns(contract.PROMO_ASSIGNMENTS)
# One row per published night: what marketing's table was produced under.
PROMO_RUNS_COLUMNS: dict[str, str] = contract.warehouse_columns(contract.PROMO_RUNS)


def to_warehouse_arrow(table: pa.Table) -> pa.Table:
    """UTC-aware timestamps become naive UTC (the warehouse stores ``timestamp`` holding UTC)."""
    columns = []
    for field, column in zip(table.schema, table.columns):
        if pa.types.is_timestamp(field.type) and field.type.tz is not None:
            column = pc.cast(column, pa.timestamp("us"))
        elif pa.types.is_dictionary(field.type):
            column = pc.cast(column, field.type.value_type)
        columns.append(column)
    return pa.Table.from_arrays(columns, names=table.column_names)


class Warehouse:
    """A connection to the warehouse named by ``PROMO_WAREHOUSE_URL``."""

    def __init__(self, settings: Settings):
        self.kind = settings.warehouse_kind
        self.default_schema = "main" if self.kind == "duckdb" else "public"
        self.raw_schema = RAW_SCHEMA
        self.url = _redacted(settings.warehouse_url)
        if self.kind == "duckdb":
            import duckdb

            path = Path(settings.duckdb_path)
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                self._con = duckdb.connect(str(path))
            except duckdb.IOException as err:
                raise WarehouseUnavailableError(
                    f"warehouse {self.url}: the DuckDB file is in use by another process ({str(err).splitlines()[0]}). "
                    "DuckDB allows one writer at a time: wait for the other run (or stop the process holding the file) "
                    "and re-run the date. Nothing was written by this step; published nights are untouched."
                ) from err
            self._con.execute("set TimeZone='UTC'")
        else:
            import psycopg2

            url = urlparse(settings.warehouse_url)
            try:
                self._con = psycopg2.connect(
                    host=url.hostname or "127.0.0.1",
                    port=url.port or 5432,
                    user=url.username or "postgres",
                    password=url.password,
                    dbname=(url.path or "/postgres").lstrip("/"),
                    connect_timeout=10,
                    application_name="promoflow",
                )
            except psycopg2.OperationalError as err:
                raise WarehouseUnavailableError(
                    f"warehouse {self.url}: cannot connect to PostgreSQL ({' '.join(str(err).split())}). "
                    "Nothing was read or written by this step; published nights are untouched. Start the database or "
                    "fix PROMO_WAREHOUSE_URL, then re-run the date."
                ) from err
            self._con.autocommit = True
            with self._con.cursor() as cur:
                cur.execute("set timezone = 'UTC'")

    # ----------------------------------------------------------------- basics
    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def execute(self, sql: str, params: tuple | list | None = None) -> None:
        if self.kind == "duckdb":
            self._con.execute(sql, params or [])
        else:
            with self._con.cursor() as cur:
                cur.execute(sql.replace("?", "%s"), params or None)

    def query(self, sql: str, params: tuple | list | None = None) -> list[tuple]:
        if self.kind == "duckdb":
            return self._con.execute(sql, params or []).fetchall()
        with self._con.cursor() as cur:
            cur.execute(sql.replace("?", "%s"), params or None)
            return cur.fetchall()

    def query_arrow(self, sql: str, params: tuple | list | None = None) -> pa.Table:
        if self.kind == "duckdb":
            result = self._con.execute(sql, params or [])
            return result.to_arrow_table()
        import pandas as pd

        with self._con.cursor() as cur:
            cur.execute(sql.replace("?", "%s"), params or None)
            names = [d[0] for d in cur.description]
            rows = cur.fetchall()
        return pa.Table.from_pandas(pd.DataFrame(rows, columns=names), preserve_index=False)

    def table_exists(self, schema: str, table: str) -> bool:
        rows = self.query(
            "select count(*) from information_schema.tables where table_schema = ? and table_name = ?", [schema, table]
        )
        return rows[0][0] > 0

    @contextmanager
    def transaction(self, lock: str | None = None) -> Iterator[Warehouse]:
        """One transaction; on Postgres ``lock`` names an advisory lock held until it ends (others wait)."""
        if self.kind == "duckdb":
            self._con.execute("begin transaction")
            try:
                yield self
            except BaseException:
                self._con.execute("rollback")
                raise
            self._con.execute("commit")
            return
        import psycopg2

        try:
            self._con.autocommit = False
            try:
                if lock is not None:
                    self.execute("select pg_advisory_xact_lock(?)", [_lock_key(lock)])
                yield self
            except BaseException:
                try:
                    self._con.rollback()
                except psycopg2.Error:
                    pass  # the connection is gone: the server rolled the transaction back
                raise
            else:
                self._con.commit()
            finally:
                if not self._con.closed:
                    self._con.autocommit = True
        except (psycopg2.OperationalError, psycopg2.InterfaceError) as err:
            raise WarehouseUnavailableError(
                f"warehouse {self.url}: the connection was lost inside a transaction ({' '.join(str(err).split())}); "
                "PostgreSQL rolled it back, so none of it was written and the previous rows stay. "
                "Check the database, then re-run the date."
            ) from err

    # ------------------------------------------------------------------ loads
    def _create_table_like(self, qualified: str, schema: pa.Schema) -> None:
        """Create the table, or add the columns a newer producer added (e.g. Spark feature columns)."""
        cols = ", ".join(f'"{f.name}" {contract.warehouse_type(f.type)}' for f in schema)
        self.execute(f"create table if not exists {qualified} ({cols})")
        schema_name, table = qualified.split(".", 1)
        existing = {
            r[0]
            for r in self.query(
                "select column_name from information_schema.columns where table_schema = ? and table_name = ?",
                [schema_name, table],
            )
        }
        for field in schema:
            if field.name not in existing:
                self.execute(f'alter table {qualified} add column "{field.name}" {contract.warehouse_type(field.type)}')

    def _insert_arrow(self, qualified: str, data: pa.Table) -> None:
        if data.num_rows == 0:
            return
        names = ", ".join(f'"{n}"' for n in data.column_names)
        if self.kind == "duckdb":
            self._con.register("_incoming", data)
            try:
                self._con.execute(f"insert into {qualified} ({names}) select {names} from _incoming")
            finally:
                self._con.unregister("_incoming")
        else:
            buffer = io.BytesIO()
            pacsv.write_csv(data, buffer, pacsv.WriteOptions(include_header=False, quoting_style="needed"))
            buffer.seek(0)
            with self._con.cursor() as cur:
                cur.copy_expert(f"copy {qualified} ({names}) from stdin with (format csv)", buffer)

    def replace_rows(self, schema: str, table: str, data: pa.Table, where: dict[str, object] | None) -> None:
        """Replace the rows of ``schema.table`` matching ``where`` (all rows when None) with ``data``, atomically."""
        data = to_warehouse_arrow(data)
        qualified = f"{schema}.{table}"
        with self.transaction(lock="ddl"):
            self.execute(f"create schema if not exists {schema}")
            self._create_table_like(qualified, data.schema)
        lock = f"{qualified}:" + json.dumps(
            {k: _param(v) for k, v in (where or {}).items()}, sort_keys=True, default=str
        )
        with self.transaction(lock=lock):
            if where:
                clause = " and ".join(f'"{c}" = ?' for c in where)
                self.execute(f"delete from {qualified} where {clause}", [_param(v) for v in where.values()])
            else:
                self.execute(f"delete from {qualified}")
            self._insert_arrow(qualified, data)

    # ---------------------------------------------------------- load tracking
    def _load_log_fingerprint(self, table: str, partition: str) -> str | None:
        with self.transaction(lock="ddl"):
            self.execute(f"create schema if not exists {self.raw_schema}")
            self.execute(
                f"create table if not exists {self.raw_schema}._load_log (table_name varchar, partition_key varchar, fingerprint varchar, loaded_at timestamp)"
            )
        rows = self.query(
            f"select fingerprint from {self.raw_schema}._load_log where table_name = ? and partition_key = ?",
            [table, partition],
        )
        return rows[0][0] if rows else None

    def load_files(
        self, table: str, files: list[Path], where: dict[str, object] | None, extra: dict[str, object] | None = None
    ) -> bool:
        """Load Parquet ``files`` into ``raw.<table>`` replacing rows matching ``where``; skip when unchanged.

        Returns True when rows were (re)loaded.
        """
        partition = json.dumps({k: _param(v) for k, v in (where or {}).items()}, sort_keys=True, default=str)
        fingerprint = _files_fingerprint(files)
        if self._load_log_fingerprint(table, partition) == fingerprint and self.table_exists(self.raw_schema, table):
            return False
        data = pa.concat_tables([pq.read_table(f) for f in files]) if files else None
        if data is None:
            return False
        for name, value in (extra or {}).items():
            if name not in data.column_names:
                data = data.append_column(name, pa.array([value] * data.num_rows))
        self.replace_rows(self.raw_schema, table, data, where)
        with self.transaction(lock=f"_load_log:{table}:{partition}"):
            self.execute(
                f"delete from {self.raw_schema}._load_log where table_name = ? and partition_key = ?",
                [table, partition],
            )
            self.execute(
                f"insert into {self.raw_schema}._load_log values (?, ?, ?, current_timestamp)",
                [table, partition, fingerprint],
            )
        return True

    # ------------------------------------------------------- published output
    def ensure_promo_assignments(self) -> None:
        cols = ", ".join(f"{c} {t}" for c, t in PROMO_ASSIGNMENTS_COLUMNS.items())
        with self.transaction(lock="ddl"):
            self.execute(f"create table if not exists {self.default_schema}.promo_assignments ({cols})")

    def ensure_promo_runs(self) -> None:
        cols = ", ".join(f"{c} {t}" for c, t in PROMO_RUNS_COLUMNS.items())
        with self.transaction(lock="ddl"):
            self.execute(f"create table if not exists {self.default_schema}.promo_runs ({cols})")

    def replace_assignments(self, run_date: date, rows: pa.Table, run: dict | None = None) -> None:
        """Replace one run_date of ``promo_assignments`` (and its ``promo_runs`` row) in one transaction.

        Older dates are untouched; a failure leaves the previous rows of the date.
        """
        self.ensure_promo_assignments()
        self.ensure_promo_runs()
        rows = rows.select(list(PROMO_ASSIGNMENTS_COLUMNS))
        # Same date: the second run waits here, then replaces the first one's rows (never adds to them).
        with self.transaction(lock=f"promo_assignments:{run_date.isoformat()}"):
            self.execute(f"delete from {self.default_schema}.promo_assignments where run_date = ?", [run_date])
            self._insert_arrow(f"{self.default_schema}.promo_assignments", to_warehouse_arrow(rows))
            if run is not None:
                self.execute(f"delete from {self.default_schema}.promo_runs where run_date = ?", [run_date])
                values = [run.get(c) for c in PROMO_RUNS_COLUMNS]
                placeholders = ", ".join("?" for _ in PROMO_RUNS_COLUMNS)
                self.execute(f"insert into {self.default_schema}.promo_runs values ({placeholders})", values)


def _param(value: object) -> object:
    return value.isoformat() if isinstance(value, date) else value


def _files_fingerprint(files: list[Path]) -> str:
    parts = sorted((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()
