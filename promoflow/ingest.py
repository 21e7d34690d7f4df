"""Ingest the raw landing zone into the lake: type, check, quarantine, validate.

For each landing partition this night needs (every ``dt`` before the run date
that is new or whose files changed since it was last ingested, plus the three
snapshots every night), the stage:

1. reads the partition's files (Parquet, or CSV with a header), from a local
   folder or S3, and stops with a clear message on an unreadable file or a
   missing column (schema drift);
2. casts every column to the contract's type with ``TRY_CAST`` in DuckDB and
   applies row rules in SQL; a row that breaks a rule goes to the quarantine
   with the first reason it broke (``invalid_price``, ``unknown_user_id``,
   ``duplicate_event_id`` ...), the others go on;
3. stops when the share of bad rows is over ``max_bad_row_share`` or a
   required partition is empty;
4. validates the clean rows with a Great Expectations checkpoint per table;
5. writes ``{lake}/clean/...`` and ``{lake}/quarantine/...`` and, last, a
   manifest with the source fingerprint, so a re-run skips unchanged
   partitions and a crash never leaves a partition marked done half-written.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import tempfile
import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from promoflow import atomic, contract, quality, storage
from promoflow.contract import CHANNELS, EVENT_TYPES, PROMO_TYPES
from promoflow.quality import DataQualityError
from promoflow.settings import Settings

log = logging.getLogger(__name__)

RULES_VERSION = "ingest-rules-v2"


def _duckdb_type(arrow_type: pa.DataType) -> str:
    """The DuckDB type ingest casts a landing column of this contract type to."""
    if pa.types.is_string(arrow_type):
        return "VARCHAR"
    if pa.types.is_timestamp(arrow_type):
        return "TIMESTAMPTZ" if arrow_type.tz else "TIMESTAMP"
    if pa.types.is_float64(arrow_type):
        return "DOUBLE"
    if pa.types.is_int32(arrow_type):
        return "INTEGER"
    if pa.types.is_date32(arrow_type):
        return "DATE"
    raise TypeError(f"no DuckDB type for contract type {arrow_type}")


@dataclass(frozen=True)
class TableSpec:
    """One landing table: its contract (columns, key, not-null) and the rules its rows must meet."""

    name: str
    # (reason, SQL condition that marks a row bad), checked in order; columns are already cast.
    rules: tuple[tuple[str, str], ...] = ()
    # column -> SQL expression over the clean columns, added after the checks
    derived: tuple[tuple[str, str], ...] = ()
    # required by the contract, yet a null is accepted rather than quarantined
    tolerated_nulls: tuple[str, ...] = ()

    @property
    def columns(self) -> dict[str, str]:
        """Column -> DuckDB type, in the contract's order."""
        return {f.name: _duckdb_type(f.type) for f in contract.RAW_TABLES[self.name]}

    @property
    def key(self) -> tuple[str, ...]:
        return contract.RAW_KEYS[self.name]

    @property
    def partitioned(self) -> bool:
        return self.name in contract.DAILY_TABLES

    @property
    def required_not_null(self) -> tuple[str, ...]:
        return tuple(c for c in contract.required_columns(self.name) if c not in self.tolerated_nulls)

    @property
    def snapshot_file(self) -> str:
        return f"{self.name}.parquet"


def _ts_in_day(col: str) -> tuple[tuple[str, str], ...]:
    return (
        ("future_timestamp", f"{col} >= $run_start"),
        (f"{col}_outside_partition_day", f"{col} < $day_start or {col} >= $day_end"),
    )


TABLES: dict[str, TableSpec] = {
    "users": TableSpec(
        name="users",
        # a user without region or device is still a customer: dbt reports them as 'unknown'
        tolerated_nulls=("region", "device"),
        # A snapshot exported after midnight legitimately holds today's signups; only absurd values are bad.
        rules=(("future_timestamp", "signup_ts > now() + interval 1 day"),),
    ),
    "items": TableSpec(
        name="items",
        rules=(("non_positive_price", "price <= 0"), ("negative_unit_cost", "unit_cost < 0")),
    ),
    "promotions": TableSpec(
        name="promotions",
        rules=(
            ("reserved_promo_id_none", "promo_id = 'none'"),
            ("invalid_promo_type", f"promo_type not in {PROMO_TYPES}"),
            ("invalid_channel", f"channel is not null and channel not in {CHANNELS}"),
            ("negative_value", "value < 0 or min_spend < 0 or coalesce(max_discount, 0) < 0"),
            ("percent_over_100", "promo_type = 'percent_off' and value > 100"),
            ("non_positive_valid_days", "valid_days <= 0"),
            ("active_to_before_active_from", "active_to < active_from"),
        ),
    ),
    "events": TableSpec(
        name="events",
        rules=(
            ("invalid_event_type", f"event_type not in {EVENT_TYPES}"),
            *_ts_in_day("event_ts"),
            ("unknown_user_id", "user_id not in (select user_id from known_users)"),
            ("unknown_item_id", "item_id is not null and item_id not in (select item_id from known_items)"),
        ),
    ),
    "orders": TableSpec(
        name="orders",
        rules=(
            ("negative_amount", "gross_amount < 0 or discount_amount < 0 or cogs < 0 or shipping_fee < 0"),
            # A free-shipping offer's waived fee is part of discount_amount, so the discount may reach
            # gross + shipping fee, never more.
            ("discount_over_gross", "discount_amount > gross_amount + shipping_fee"),
            ("non_positive_n_items", "n_items <= 0"),
            *_ts_in_day("order_ts"),
            ("unknown_user_id", "user_id not in (select user_id from known_users)"),
            ("unknown_promo_id", "promo_id is not null and promo_id not in (select promo_id from known_promos)"),
        ),
    ),
    "exposures": TableSpec(
        name="exposures",
        rules=(
            ("propensity_outside_0_1", "propensity is not null and (propensity <= 0 or propensity > 1)"),
            ("invalid_channel", f"channel not in {CHANNELS}"),
            *_ts_in_day("sent_ts"),
            ("unknown_user_id", "user_id not in (select user_id from known_users)"),
            ("unknown_promo_id", "promo_id <> 'none' and promo_id not in (select promo_id from known_promos)"),
        ),
        derived=(
            ("exposure_id", "md5(user_id || '|' || promo_id || '|' || strftime(sent_ts, '%Y-%m-%dT%H:%M:%S.%f'))"),
        ),
    ),
}
SNAPSHOTS = contract.SNAPSHOT_TABLES
# Validated by a GX checkpoint on the Spark engine in the features stage (see
# promoflow.feature_checks), not in pandas here: the largest table of a night.
SPARK_VALIDATED = ("events",)
PARTITIONED = contract.DAILY_TABLES
QUARANTINE_SCHEMA = pa.schema(
    [
        ("table_name", pa.string()),
        ("partition", pa.string()),
        ("source_file", pa.string()),
        ("quarantine_reason", pa.string()),
        ("run_date", pa.date32()),
        ("record", pa.string()),
    ]
)


@dataclass
class PartitionReport:
    table: str
    partition: str
    rows_in: int
    rows_clean: int
    rows_quarantined: int
    reasons: dict[str, int] = field(default_factory=dict)
    skipped_unchanged: bool = False
    # ingested before under other files (a re-delivery), as opposed to new tonight
    redelivered: bool = False


def user_key(user_id: str, secret: str) -> str:
    """Pseudonymous key for marketing: HMAC-SHA256 of user_id, truncated to 32 hex chars."""
    return hmac.new(secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()[:32]


def user_key_id(secret: str) -> str:
    """Names the HMAC key without revealing it: a rotated key changes it (and re-keys the users snapshot)."""
    return hmac.new(secret.encode(), b"promoflow user_key key id", hashlib.sha256).hexdigest()[:12]


def _lake(settings: Settings, *parts: str) -> Path:
    return Path(settings.lake_dir).joinpath(*parts)


def _read_source_files(
    table: TableSpec, files: list[storage.FileInfo], store: storage.Storage, scratch: Path
) -> list[pa.Table]:
    """Read every landing file of one partition; stop on unreadable files or missing columns.

    Returns one Arrow table per distinct file schema (10,000 tiny files of one export become
    one table, not 10,000 SQL views), each with ``_source_file`` and ``_source_row``.
    """
    by_schema: dict[pa.Schema, list[pa.Table]] = {}
    for info in files:
        local = scratch / uuid.uuid4().hex
        if storage.is_s3(info.uri):
            store.download(info.uri, local)
        else:
            local = Path(info.uri)
        try:
            if info.name.endswith(".csv"):
                # Every contract column as text: type inference would turn user id "007" into 7;
                # TRY_CAST in DuckDB types them (and quarantines what does not cast).
                data = pacsv.read_csv(
                    local,
                    convert_options=pacsv.ConvertOptions(
                        strings_can_be_null=True, column_types={c: pa.string() for c in table.columns}
                    ),
                )
            elif info.name.endswith(".parquet"):
                data = pq.read_table(local)
            else:
                raise DataQualityError(
                    f"{info.uri}: unexpected file in the landing zone; the contract allows *.parquet (and *.csv with a header). "
                    "Move the file out of the partition folder and re-run the date. "
                    "The previously published assignments and exports were not touched."
                )
        except DataQualityError:
            raise
        except Exception as err:  # pyarrow raises several types for corrupt files
            raise DataQualityError(
                f"{info.uri}: not a readable {'CSV' if info.name.endswith('.csv') else 'Parquet'} file ({type(err).__name__}: {err}). "
                f"Table {table.name!r} cannot be ingested; replace or remove the file and re-run the date. "
                "The previously published assignments and exports were not touched."
            ) from err
        missing = [c for c in table.columns if c not in data.column_names]
        if missing:
            raise DataQualityError(
                f"{info.uri}: table {table.name!r} is missing column(s) {missing} required by the data contract "
                f"(found {data.column_names}). Fix the export that writes this table and re-run the date. "
                "The previously published assignments and exports were not touched."
            )
        data = data.select(list(table.columns))
        data = data.append_column("_source_file", pa.array([info.uri] * data.num_rows, pa.string()))
        data = data.append_column("_source_row", pa.array(range(data.num_rows), pa.int64()))
        by_schema.setdefault(data.schema, []).append(data)
    return [pa.concat_tables(group) for group in by_schema.values()]


def _check_rows(
    con: duckdb.DuckDBPyConnection,
    table: TableSpec,
    sources: list[pa.Table],
    partition: str,
    run_date: date,
    day: date | None,
) -> tuple[pa.Table, pa.Table]:
    """Split rows into (clean, quarantined) with SQL rules; returns Arrow tables."""
    selects = []
    for i, data in enumerate(sources):
        con.register(f"src_{i}", data)
        selects.append(f"select * from src_{i}")
    union = " union all by name ".join(selects)
    casts = ",\n".join(f"try_cast({c} as {t}) as {c}" for c, t in table.columns.items())
    bad_type = [(f"invalid_{c}", f"{c} is null and _raw_{c} is not null") for c in table.columns]
    # NaN and +-inf cast to DOUBLE fine and compare oddly (NaN > every number): a row rule of their own.
    non_finite = [(f"non_finite_{c}", f"not isfinite({c})") for c, t in table.columns.items() if t == "DOUBLE"]
    not_null = [(f"missing_{c}", f"{c} is null") for c in table.required_not_null]
    key_list = ", ".join(table.key)
    duplicate = [(f"duplicate_{'_'.join(table.key)}", "_key_rank > 1")]
    rules = [*bad_type, *non_finite, *not_null, *duplicate, *table.rules]
    case = "case\n" + "\n".join(f"  when {cond} then '{reason}'" for reason, cond in rules) + "\n  else null end"
    raw_cols = ", ".join(f"cast({c} as varchar) as _raw_{c}" for c in table.columns)
    params = {"run_start": f"{run_date.isoformat()} 00:00:00+00"}
    if day is not None:
        params["day_start"] = f"{day.isoformat()} 00:00:00+00"
        params["day_end"] = f"{(day + timedelta(days=1)).isoformat()} 00:00:00+00"
    sql = f"""
        with unioned as ({union}),
        typed as (
            select {casts}, {raw_cols}, _source_file, _source_row
            from unioned
        ),
        ranked as (
            select *, row_number() over (partition by {key_list} order by _source_file, _source_row) as _key_rank
            from typed
        )
        select *, {case} as quarantine_reason from ranked
    """
    for name, value in params.items():
        sql = sql.replace(f"${name}", f"timestamptz '{value}'")
    con.execute(f"create or replace temp table checked as {sql}")
    order = ", ".join(table.key)
    derived = "".join(f", {expr} as {name}" for name, expr in table.derived)
    clean = con.sql(
        f"select {', '.join(table.columns)}{derived} from checked where quarantine_reason is null order by {order}"
    ).to_arrow_table()
    raw_json = "json_object(" + ", ".join(f"'{c}', _raw_{c}" for c in table.columns) + ")"
    quarantined = con.sql(
        f"""select '{table.name}' as table_name, '{partition}' as partition, _source_file as source_file,
                   quarantine_reason, date '{run_date.isoformat()}' as run_date, cast({raw_json} as varchar) as record
            from checked where quarantine_reason is not null
            order by source_file, _source_row"""
    ).to_arrow_table()
    for i in range(len(sources)):
        con.unregister(f"src_{i}")
    return clean, quarantined.cast(QUARANTINE_SCHEMA)


def clean_columns(table: TableSpec) -> list[str]:
    """Columns of a table's clean lake copy: the contract's plus derived keys."""
    extra = ["user_key"] if table.name == "users" else []
    return [*table.columns, *(name for name, _ in table.derived), *extra]


def expectations(table: TableSpec) -> list:
    import great_expectations as gx

    exps = [
        gx.expectations.ExpectTableColumnsToMatchOrderedList(column_list=clean_columns(table)),
        gx.expectations.ExpectTableRowCountToBeBetween(min_value=1),
    ]
    exps += [gx.expectations.ExpectColumnValuesToNotBeNull(column=c) for c in table.required_not_null]
    if len(table.key) == 1:
        exps.append(gx.expectations.ExpectColumnValuesToBeUnique(column=table.key[0]))
    else:
        exps.append(gx.expectations.ExpectCompoundColumnsToBeUnique(column_list=list(table.key)))
    if table.name == "items":
        exps.append(gx.expectations.ExpectColumnValuesToBeBetween(column="price", min_value=0, strict_min=True))
    if table.name == "events":
        exps.append(gx.expectations.ExpectColumnValuesToBeInSet(column="event_type", value_set=list(EVENT_TYPES)))
    if table.name == "promotions":
        exps.append(gx.expectations.ExpectColumnValuesToBeInSet(column="promo_type", value_set=list(PROMO_TYPES)))
        exps.append(gx.expectations.ExpectColumnValuesToNotBeInSet(column="promo_id", value_set=["none"]))
    if table.name == "exposures":
        exps.append(
            gx.expectations.ExpectColumnValuesToBeBetween(
                column="propensity", min_value=0, max_value=1, strict_min=True
            )
        )
    return exps


def _write_parquet(data: pa.Table, path: Path) -> None:
    atomic.write_with(path, lambda tmp: pq.write_table(data, tmp, compression="zstd"))


def _fingerprint(files: list[storage.FileInfo], extra: str = "") -> str:
    payload = json.dumps([RULES_VERSION, extra, [(f.name, f.size, f.version) for f in files]])
    return hashlib.sha256(payload.encode()).hexdigest()


def _manifest_path(settings: Settings, table: str, partition: str) -> Path:
    return _lake(settings, "clean", "_manifest", table, f"{partition}.json")


def landing_partitions(settings: Settings, table: str, before: date) -> list[date]:
    """``dt=`` partitions of a landing table strictly before ``before`` (never the run date or later)."""
    store = storage.storage_for(settings.raw_uri, settings.s3_endpoint_url, settings)
    days = []
    for name in store.list_dirs(storage.join(settings.raw_uri, table)):
        if not name.startswith("dt="):
            continue
        try:
            day = date.fromisoformat(name[3:])
        except ValueError:
            raise DataQualityError(
                f"{storage.join(settings.raw_uri, table, name)}: partition folder name is not dt=YYYY-MM-DD. "
                "Rename or remove it and re-run the date. The previously published assignments and exports were not touched."
            ) from None
        if day < before:
            days.append(day)
    return sorted(days)


@dataclass
class _CheckedPartition:
    report: PartitionReport
    clean: pa.Table
    quarantined: pa.Table
    clean_path: Path
    quarantine_path: Path
    manifest_path: Path
    fingerprint: str
    source_files: str


def _check_partition(
    settings: Settings,
    con: duckdb.DuckDBPyConnection,
    table: TableSpec,
    run_date: date,
    day: date | None,
    scratch: Path,
) -> PartitionReport | _CheckedPartition:
    """Check one partition; an unchanged, already ingested partition returns its stored report."""
    store = storage.storage_for(settings.raw_uri, settings.s3_endpoint_url, settings)
    partition = f"dt={day.isoformat()}" if day else "snapshot"
    folder = storage.join(settings.raw_uri, table.name, partition if day else "")
    files = store.list_files(folder)
    if not files:
        raise DataQualityError(
            f"{folder}: no data files for table {table.name!r}"
            + (f" partition {partition}" if day else "")
            + ". An empty or missing partition means the upstream export did not land; re-deliver it and re-run the date. "
            "The previously published assignments and exports were not touched."
        )
    # The users snapshot carries user_key: a rotated HMAC key must re-key it even if the files did not change.
    fingerprint = _fingerprint(files, user_key_id(settings.user_key_secret) if table.name == "users" else "")
    source_files = _fingerprint(files)
    manifest = _manifest_path(settings, table.name, partition)
    redelivered = False
    if manifest.exists():
        previous = json.loads(manifest.read_text())
        if previous["fingerprint"] == fingerprint:
            return PartitionReport(**{**previous["report"], "skipped_unchanged": True})
        redelivered = previous.get("source_files", source_files) != source_files

    sources = _read_source_files(table, files, store, scratch)
    rows_in = sum(t.num_rows for t in sources)
    if rows_in == 0:
        raise DataQualityError(
            f"{folder}: table {table.name!r} {partition} has files but zero rows. An empty partition means the upstream "
            "export failed; re-deliver it and re-run the date. The previously published assignments and exports were not touched."
        )
    clean, quarantined = _check_rows(con, table, sources, partition, run_date, day)
    reasons: dict[str, int] = {}
    for reason in quarantined.column("quarantine_reason").to_pylist():
        reasons[reason] = reasons.get(reason, 0) + 1
    report = PartitionReport(
        table.name, partition, rows_in, clean.num_rows, quarantined.num_rows, reasons, redelivered=redelivered
    )
    # Duplicates are extra copies of rows that also arrive clean: they do not count against the threshold.
    bad = sum(n for r, n in reasons.items() if not r.startswith("duplicate_"))
    if bad / rows_in > settings.max_bad_row_share:
        raise DataQualityError(
            f"{folder}: {bad} of {rows_in} rows of table {table.name!r} {partition} break the contract "
            f"({bad / rows_in:.1%} > max_bad_row_share {settings.max_bad_row_share:.1%}); reasons {reasons}. "
            + _offending_rows_advice(table, quarantined, rows_in, folder)
            + "The previously published assignments and exports were not touched."
        )
    if table.name == "users":
        keys = [user_key(u, settings.user_key_secret) for u in clean.column("user_id").to_pylist()]
        clean = clean.append_column("user_key", pa.array(keys, pa.string()))
    if day:
        clean_path = _lake(settings, "clean", table.name, partition, "part-0.parquet")
    else:
        clean_path = _lake(settings, "clean", table.name, table.snapshot_file)
    return _CheckedPartition(
        report,
        clean,
        quarantined,
        clean_path,
        _lake(settings, "quarantine", table.name, partition, "part-0.parquet"),
        manifest,
        fingerprint,
        source_files,
    )


SMALL_SNAPSHOT_ROWS = 100  # a snapshot this small: one bad row can pass the share, so name the rows


def _offending_rows_advice(table: TableSpec, quarantined: pa.Table, rows_in: int, folder: str) -> str:
    """What to fix: for a small snapshot (the catalogue) the offending rows by key; else the table's source."""
    if table.partitioned or rows_in > SMALL_SNAPSHOT_ROWS:
        return (
            "That is a table-level problem (a schema or export change), not a few bad rows: "
            "fix the source and re-run the date. "
        )
    named = []
    for row in quarantined.to_pylist():
        if row["quarantine_reason"].startswith("duplicate_"):
            continue
        record = json.loads(row["record"])
        key = ", ".join(f"{k}={record.get(k)!r}" for k in table.key)
        named.append(f"{key} ({row['quarantine_reason']})")
    shown = "; ".join(named[:10]) + (f"; and {len(named) - 10} more" if len(named) > 10 else "")
    return (
        f"Offending rows: {shown}. In a {rows_in}-row snapshot every bad row counts: the {table.name} snapshot "
        f"({storage.join(folder, table.snapshot_file)}) is what to fix; correct or remove these rows and re-run the date. "
    )


def _validate_and_write(settings: Settings, table: TableSpec, checked: list[_CheckedPartition]) -> None:
    """One GX checkpoint over the table's newly checked partitions, then the writes, manifests last."""
    if not checked:
        return
    if table.name not in SPARK_VALIDATED:
        frame = pa.concat_tables([c.clean for c in checked]).to_pandas()
        result = quality.run_checkpoint(settings.data_dir, f"raw_{table.name}", frame, expectations(table))
        result.raise_if_failed(
            f"Clean rows of table {table.name!r} do not meet the contract; fix the source and re-run the date."
        )
    for c in checked:
        _write_parquet(c.clean, c.clean_path)
        if c.quarantined.num_rows:
            _write_parquet(c.quarantined, c.quarantine_path)
        elif c.quarantine_path.exists():
            c.quarantine_path.unlink()
    for c in checked:
        atomic.write_text(
            c.manifest_path,
            json.dumps(
                {"fingerprint": c.fingerprint, "source_files": c.source_files, "report": c.report.__dict__}, indent=1
            ),
        )


def _register_known_keys(con: duckdb.DuckDBPyConnection, settings: Settings) -> None:
    for table, key, view in (
        ("users", "user_id", "known_users"),
        ("items", "item_id", "known_items"),
        ("promotions", "promo_id", "known_promos"),
    ):
        path = _lake(settings, "clean", table, f"{table}.parquet")
        con.execute(f"create or replace temp view {view} as select {key} from read_parquet('{path}')")


def _ingest_table(
    settings: Settings,
    con: duckdb.DuckDBPyConnection,
    table: TableSpec,
    run_date: date,
    days: list[date | None],
    scratch: Path,
) -> list[PartitionReport]:
    results = [_check_partition(settings, con, table, run_date, day, scratch) for day in days]
    _validate_and_write(settings, table, [r for r in results if isinstance(r, _CheckedPartition)])
    return [r.report if isinstance(r, _CheckedPartition) else r for r in results]


def ingest(settings: Settings, run_date: date) -> dict:
    """Ingest and validate everything night ``run_date`` needs; return the run summary.

    Raises :class:`DataQualityError` (one readable paragraph) on a table-level problem.
    """
    latest_day = run_date - timedelta(days=1)
    if latest_day not in landing_partitions(settings, "events", run_date):
        raise DataQualityError(
            f"{storage.join(settings.raw_uri, 'events', 'dt=' + latest_day.isoformat())}: no events partition for "
            f"{latest_day}, the day before run date {run_date}. The night's decisions need that day's behaviour; "
            "land it and re-run the date. The previously published assignments and exports were not touched."
        )
    reports: list[PartitionReport] = []
    ingested_before = {name: any(_lake(settings, "clean", "_manifest", name).glob("dt=*.json")) for name in PARTITIONED}
    with tempfile.TemporaryDirectory(prefix="promoflow-ingest-") as tmp:
        scratch = Path(tmp)
        con = duckdb.connect()
        con.execute("set TimeZone='UTC'")
        previous_users = _previous_user_ids(con, settings)
        for name in SNAPSHOTS:
            reports += _ingest_table(settings, con, TABLES[name], run_date, [None], scratch)
        _register_known_keys(con, settings)
        dropped = _dropped_users_with_live_offer(con, settings, run_date, previous_users)
        events_window_start = run_date - timedelta(days=settings.feature_lookback_days)
        landed = {name: landing_partitions(settings, name, run_date) for name in PARTITIONED}
        for name in PARTITIONED:
            days = [d for d in landed[name] if name != "events" or d >= events_window_start]
            # A partition keeps the verdict it got against the snapshots of the night it was
            # ingested; re-checking all history whenever users change would make nights grow with history.
            reports += _ingest_table(settings, con, TABLES[name], run_date, days, scratch)
        con.close()
    quality.build_data_docs(settings.data_dir)
    summary = summarise(reports)
    _report_late_partitions(summary, ingested_before, latest_day)
    _report_missing_partitions(summary, landed, latest_day)
    summary["users"]["dropped_users_with_live_offer"] = dropped
    return summary


def _report_missing_partitions(summary: dict, landed: dict[str, list[date]], latest_day: date) -> None:
    """Name yesterday's orders / exposures partition when it has not landed (``landed``: each table's
    dt= days before the run date; a table with none is one the shop does not land).

    The night runs on what it has: yesterday's orders count for attribution, features and
    training when they land (reported as late that night); until then the sends they answer
    look unanswered."""
    for name in PARTITIONED:
        t = summary.get(name)
        if t is None or name == "events":  # a missing events day stops the night (ingest)
            continue
        days = landed[name]
        t["missing"] = [f"dt={latest_day.isoformat()}"] if days and latest_day not in days else []
        for partition in t["missing"]:
            log.warning(
                "%s %s has not landed: tonight runs without it; it counts when it lands (reported as late then)",
                name,
                partition,
            )


def _report_late_partitions(summary: dict, ingested_before: dict[str, bool], latest_day: date) -> None:
    """Name partitions older than yesterday that arrived (or were re-delivered) after their night ran."""
    for name in PARTITIONED:
        t = summary.get(name)
        if t is None:
            continue
        late = [p for p in t["ingested"] if ingested_before[name] and p < f"dt={latest_day.isoformat()}"]
        t["late"] = [p for p in late if p not in t["redelivered"]]
        for partition in t["late"]:
            log.warning(
                "%s %s landed late (after the night that needed it ran): ingested tonight; tonight's features and "
                "training use it, earlier nights' published assignments are not recomputed",
                name,
                partition,
            )
        for partition in t["redelivered"]:
            log.warning(
                "%s %s was re-delivered with other files: re-checked and replaced in the lake tonight", name, partition
            )


def _previous_user_ids(con: duckdb.DuckDBPyConnection, settings: Settings) -> set[str]:
    path = _lake(settings, "clean", "users", "users.parquet")
    if not path.exists():
        return set()
    return {r[0] for r in con.execute("select user_id from read_parquet(?)", [str(path)]).fetchall()}


def _dropped_users_with_live_offer(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    run_date: date,
    previous_users: set[str],
) -> int:
    """Users the new snapshot dropped while an offer sent to them is still redeemable; logged, counted, not fatal.

    Their later events, orders and exposures are quarantined as ``unknown_user_id`` until they come back.
    """
    exposures = sorted(_lake(settings, "clean", "exposures").glob("dt=*/part-0.parquet"))
    if not previous_users or not exposures:
        return 0
    current = {r[0] for r in con.execute("select user_id from known_users").fetchall()}
    dropped = previous_users - current
    if not dropped:
        return 0
    con.register("_dropped", pa.table({"user_id": sorted(dropped)}))
    rows = con.execute(
        """select count(distinct e.user_id) from read_parquet(?) e
           join read_parquet(?) p using (promo_id)
           where e.user_id in (select user_id from _dropped)
             and e.sent_ts + to_days(p.valid_days) > ?::timestamptz""",
        [
            [str(f) for f in exposures],
            str(_lake(settings, "clean", "promotions", "promotions.parquet")),
            f"{run_date.isoformat()} 00:00:00+00",
        ],
    ).fetchall()
    con.unregister("_dropped")
    live = int(rows[0][0])
    if live:
        log.warning(
            "users snapshot dropped %d of %d users; %d of them hold an offer that is still redeemable. They get no "
            "assignment tonight, their published rows of earlier nights stay, and their new events, orders and "
            "exposures are quarantined as unknown_user_id until the snapshot lists them again",
            len(dropped),
            len(previous_users),
            live,
        )
    return live


def summarise(reports: list[PartitionReport]) -> dict:
    summary: dict[str, dict] = {}
    for r in reports:
        t = summary.setdefault(
            r.table,
            {
                "partitions": 0,
                "partitions_ingested": 0,
                "rows_in": 0,
                "rows_clean": 0,
                "rows_quarantined": 0,
                "reasons": {},
                "ingested": [],
                "redelivered": [],
            },
        )
        t["partitions"] += 1
        if not r.skipped_unchanged:
            t["partitions_ingested"] += 1
            t["ingested"].append(r.partition)
            if r.redelivered:
                t["redelivered"].append(r.partition)
        t["rows_in"] += r.rows_in
        t["rows_clean"] += r.rows_clean
        t["rows_quarantined"] += r.rows_quarantined
        for reason, n in r.reasons.items():
            t["reasons"][reason] = t["reasons"].get(reason, 0) + n
    return summary
