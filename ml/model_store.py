"""Versioned model folders in a model store: a local folder or ``s3://bucket/prefix``.

Layout under the store URI::

    {model_name}/{run_date}-{data_hash[:12]}/...files of the model folder...
    {model_name}/{version}/_MANIFEST.json      file list with sizes and sha256, written after the files
    {model_name}/LATEST                        newest version, written last

``model_name`` is ``promo_response`` (the default) or ``recommender`` (``ml.recommender``):
each model has its own versions and its own ``LATEST``.

A version is complete once its manifest exists; readers verify every file against it, so a
half-copied version is never loaded. ``LATEST`` only moves forward in run_date: a backfill
of an older night stores its version without pointing ``LATEST`` back in time.

S3 goes through boto3; the endpoint comes from the ``endpoint_url`` argument, else
``PROMO_S3_ENDPOINT_URL`` (MinIO, moto), else AWS's default.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shutil
import tempfile
import uuid
from pathlib import Path

from promoflow import atomic

MODEL_NAME = "promo_response"
_MODEL_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
LATEST_FILE = "LATEST"
MANIFEST_FILE = "_MANIFEST.json"
_VERSION_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}-[0-9A-Za-z]{1,12}$")


# ---------------------------------------------------------------------------- helpers
def version_name(run_date: dt.date | str, data_hash: str) -> str:
    """``{run_date}-{data_hash[:12]}``; run_date as YYYY-MM-DD."""
    if isinstance(run_date, dt.datetime):
        run_date = run_date.date()
    if isinstance(run_date, str):
        try:
            run_date = dt.date.fromisoformat(run_date)
        except ValueError as error:
            raise ValueError(f"run_date={run_date!r}: expected a date or YYYY-MM-DD") from error
    if not re.fullmatch(r"[0-9A-Za-z]+", str(data_hash or "")):
        raise ValueError(f"data_hash={data_hash!r}: expected a non-empty alphanumeric (hex) digest")
    return f"{run_date.isoformat()}-{data_hash[:12]}"


def _check_version(version: str) -> str:
    if not _VERSION_PATTERN.match(version):
        raise ValueError(f"model version {version!r}: expected YYYY-MM-DD-<hash>, as save_model_version returns")
    return version


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _check_model_name(model_name: str) -> str:
    if not _MODEL_NAME_PATTERN.match(str(model_name)):
        raise ValueError(
            f"model_name={model_name!r}: expected lower-case letters, digits and _ (e.g. promo_response, recommender)"
        )
    return model_name


def _manifest(model_dir: Path, model_name: str = MODEL_NAME) -> dict:
    files = sorted(p for p in model_dir.rglob("*") if p.is_file())
    if not files:
        raise ValueError(f"{model_dir}: no files to store; save the model there first")
    entries = []
    for path in files:
        data = path.read_bytes()
        entries.append({"path": path.relative_to(model_dir).as_posix(), "bytes": len(data), "sha256": _sha256(data)})
    return {"model": model_name, "files": entries}


def _verify(local_dir: Path, manifest: dict) -> None:
    for entry in manifest["files"]:
        data = (local_dir / entry["path"]).read_bytes()
        if len(data) != entry["bytes"] or _sha256(data) != entry["sha256"]:
            raise OSError(
                f"{local_dir / entry['path']}: content differs from the version's manifest; the copy is corrupt"
            )


def _is_s3(uri: str) -> bool:
    return str(uri).startswith("s3://")


def _split_s3(uri: str) -> tuple[str, str]:
    bucket, _, prefix = str(uri)[len("s3://") :].partition("/")
    if not bucket:
        raise ValueError(f"store uri {uri!r}: expected s3://bucket/prefix")
    return bucket, prefix.strip("/")


def _s3_client(endpoint_url: str | None):
    import boto3  # only S3 stores need it

    endpoint_url = endpoint_url or os.environ.get("PROMO_S3_ENDPOINT_URL") or None
    return boto3.client("s3", endpoint_url=endpoint_url)


def _newer_or_equal(version: str, current: str | None) -> bool:
    return current is None or version[:10] >= current[:10]


# ---------------------------------------------------------------------------- store backends
class _LocalStore:
    def __init__(self, uri: str, model_name: str = MODEL_NAME):
        self.root = Path(uri) / model_name

    def read_latest(self) -> str | None:
        path = self.root / LATEST_FILE
        return path.read_text().strip() if path.exists() else None

    def write_version(self, model_dir: Path, version: str, manifest: dict) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        staging = self.root / f".{version}.{uuid.uuid4().hex}.tmp"
        shutil.copytree(model_dir, staging)
        (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2))
        final = self.root / version
        if final.exists():  # re-run of the same night and data: replace
            retired = self.root / f".{version}.{uuid.uuid4().hex}.old"
            final.rename(retired)
            staging.rename(final)
            shutil.rmtree(retired)
        else:
            staging.rename(final)

    def write_latest(self, version: str) -> None:
        atomic.write_text(self.root / LATEST_FILE, version + "\n")

    def download(self, version: str, target: Path) -> dict:
        source = self.root / version
        if not (source / MANIFEST_FILE).exists():
            raise FileNotFoundError(
                f"model version {version!r} not found (or incomplete) under {self.root}; versions: {self.versions()}"
            )
        shutil.copytree(source, target)
        return json.loads((target / MANIFEST_FILE).read_text())

    def versions(self) -> list[str]:
        if not self.root.exists():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / MANIFEST_FILE).exists())


class _S3Store:
    def __init__(self, uri: str, endpoint_url: str | None, model_name: str = MODEL_NAME):
        self.uri = uri
        self.model_name = model_name
        self.bucket, prefix = _split_s3(uri)
        self.prefix = f"{prefix}/{model_name}" if prefix else model_name
        self.client = _s3_client(endpoint_url)

    def _key(self, *parts: str) -> str:
        return "/".join([self.prefix, *parts])

    def read_latest(self) -> str | None:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self._key(LATEST_FILE))["Body"].read()
        except self.client.exceptions.NoSuchKey:
            return None
        return body.decode().strip()

    def write_version(self, model_dir: Path, version: str, manifest: dict) -> None:
        for entry in manifest["files"]:
            self.client.upload_file(str(model_dir / entry["path"]), self.bucket, self._key(version, entry["path"]))
        # The manifest goes last: a version without one is incomplete and never read.
        self.client.put_object(
            Bucket=self.bucket, Key=self._key(version, MANIFEST_FILE), Body=json.dumps(manifest, indent=2).encode()
        )

    def write_latest(self, version: str) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(LATEST_FILE), Body=(version + "\n").encode())

    def download(self, version: str, target: Path) -> dict:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self._key(version, MANIFEST_FILE))["Body"].read()
        except self.client.exceptions.NoSuchKey:
            raise FileNotFoundError(
                f"model version {version!r} not found (or incomplete) under {self.uri}/{self.model_name}; versions: {self.versions()}"
            ) from None
        manifest = json.loads(body)
        target.mkdir(parents=True)
        for entry in manifest["files"]:
            path = target / entry["path"]
            path.parent.mkdir(parents=True, exist_ok=True)
            self.client.download_file(self.bucket, self._key(version, entry["path"]), str(path))
        (target / MANIFEST_FILE).write_bytes(body)
        return manifest

    def versions(self) -> list[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        found = set()
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + "/"):
            for item in page.get("Contents", []):
                parts = item["Key"][len(self.prefix) + 1 :].split("/")
                if len(parts) == 2 and parts[1] == MANIFEST_FILE:
                    found.add(parts[0])
        return sorted(found)


def _store(store_uri: str, endpoint_url: str | None, model_name: str = MODEL_NAME):
    model_name = _check_model_name(model_name)
    return _S3Store(store_uri, endpoint_url, model_name) if _is_s3(store_uri) else _LocalStore(store_uri, model_name)


# ---------------------------------------------------------------------------- public API
def save_model_version(
    model_dir_local: str | Path,
    store_uri: str,
    run_date: dt.date | str,
    data_hash: str,
    *,
    endpoint_url: str | None = None,
    model_name: str = MODEL_NAME,
) -> str:
    """Copy a saved model folder into the store as ``{run_date}-{data_hash[:12]}``; return the version.

    Files first, then the version's manifest, then ``LATEST`` (unless a newer run_date already
    holds it). Re-saving the same version replaces it.
    """
    model_dir = Path(model_dir_local)
    if not model_dir.is_dir():
        raise FileNotFoundError(f"model_dir_local={model_dir}: not a folder; save the model there first")
    version = version_name(run_date, data_hash)
    store = _store(str(store_uri), endpoint_url, model_name)
    store.write_version(model_dir, version, _manifest(model_dir, model_name))
    if _newer_or_equal(version, store.read_latest()):
        store.write_latest(version)
    return version


def latest_model_version(
    store_uri: str, *, endpoint_url: str | None = None, model_name: str = MODEL_NAME
) -> str | None:
    """The version ``LATEST`` points at, or None for an empty store."""
    return _store(str(store_uri), endpoint_url, model_name).read_latest()


def list_model_versions(store_uri: str, *, endpoint_url: str | None = None, model_name: str = MODEL_NAME) -> list[str]:
    """Complete versions in the store, oldest first."""
    return _store(str(store_uri), endpoint_url, model_name).versions()


def load_model_version(
    store_uri: str,
    version: str | None,
    local_cache_dir: str | Path,
    *,
    endpoint_url: str | None = None,
    model_name: str = MODEL_NAME,
) -> Path:
    """Local folder holding ``version`` (None or ``"LATEST"``: the latest), fetched once and verified.

    The folder is ``{local_cache_dir}/{model_name}/{version}``; a verified copy already
    there is reused.
    """
    store = _store(str(store_uri), endpoint_url, model_name)
    if version is None or version == LATEST_FILE:
        version = store.read_latest()
        if version is None:
            raise FileNotFoundError(f"{store_uri}: no {model_name}/{LATEST_FILE}; train and save a model first")
    version = _check_version(version)
    cache_root = Path(local_cache_dir) / model_name
    target = cache_root / version
    if (target / MANIFEST_FILE).exists():
        try:
            _verify(target, json.loads((target / MANIFEST_FILE).read_text()))
            return target
        except (OSError, ValueError, KeyError):
            shutil.rmtree(target)  # a damaged cache is refetched, not trusted
    cache_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=cache_root))
    try:
        staged = staging / "model"
        manifest = store.download(version, staged)
        _verify(staged, manifest)
        if target.exists():
            shutil.rmtree(target)
        staged.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
