"""Versioned model storage in a local folder and in S3 (moto server on 127.0.0.1)."""

from __future__ import annotations

import json

import boto3
import pytest

from ml.model_store import (
    latest_model_version,
    list_model_versions,
    load_model_version,
    save_model_version,
)

DATA_HASH = "0123456789abcdef0123456789abcdef"


def make_model_dir(path, marker: str):
    path.mkdir(parents=True)
    (path / "response_model.keras").write_bytes(b"weights-" + marker.encode() * 100)
    (path / "response_model.json").write_text(json.dumps({"marker": marker}))
    (path / "assets").mkdir()
    (path / "assets" / "vocab.txt").write_text("shoes\nbooks\n")
    return path


def read_tree(path):
    return {
        p.relative_to(path).as_posix(): p.read_bytes()
        for p in sorted(path.rglob("*"))
        if p.is_file() and p.name != "_MANIFEST.json"
    }


@pytest.fixture
def s3_store(s3_bucket):
    return f"s3://{s3_bucket}/promoflow/prod"


@pytest.fixture(params=["local", "s3"])
def store_uri(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "store")
    return request.getfixturevalue("s3_store")


def test_save_then_load_gives_the_same_files(store_uri, tmp_path):
    model_dir = make_model_dir(tmp_path / "model", "night-1")
    version = save_model_version(model_dir, store_uri, "2026-03-01", DATA_HASH)
    assert version == "2026-03-01-0123456789ab"
    assert latest_model_version(store_uri) == version
    local = load_model_version(store_uri, version, tmp_path / "cache")
    assert read_tree(local) == read_tree(model_dir)
    assert load_model_version(store_uri, None, tmp_path / "cache2").name == version


def test_latest_moves_forward_only(store_uri, tmp_path):
    save_model_version(make_model_dir(tmp_path / "m1", "a"), store_uri, "2026-03-02", DATA_HASH)
    save_model_version(make_model_dir(tmp_path / "m2", "b"), store_uri, "2026-03-03", "ffff" * 8)
    # a backfill of an older night is stored but LATEST keeps the newest night
    save_model_version(make_model_dir(tmp_path / "m3", "c"), store_uri, "2026-02-20", DATA_HASH)
    assert latest_model_version(store_uri) == "2026-03-03-ffffffffffff"
    assert list_model_versions(store_uri) == [
        "2026-02-20-0123456789ab",
        "2026-03-02-0123456789ab",
        "2026-03-03-ffffffffffff",
    ]
    old = load_model_version(store_uri, "2026-02-20-0123456789ab", tmp_path / "cache")
    assert json.loads((old / "response_model.json").read_text()) == {"marker": "c"}


def test_resaving_a_version_replaces_it(store_uri, tmp_path):
    save_model_version(make_model_dir(tmp_path / "m1", "first"), store_uri, "2026-03-01", DATA_HASH)
    version = save_model_version(make_model_dir(tmp_path / "m2", "second"), store_uri, "2026-03-01", DATA_HASH)
    local = load_model_version(store_uri, version, tmp_path / "cache")
    assert json.loads((local / "response_model.json").read_text()) == {"marker": "second"}


def test_missing_version_names_what_exists(store_uri, tmp_path):
    save_model_version(make_model_dir(tmp_path / "m1", "a"), store_uri, "2026-03-01", DATA_HASH)
    with pytest.raises(FileNotFoundError, match="2026-03-01-0123456789ab"):
        load_model_version(store_uri, "2026-01-01-abc", tmp_path / "cache")


def test_empty_store_has_no_latest(store_uri, tmp_path):
    assert latest_model_version(store_uri) is None
    with pytest.raises(FileNotFoundError, match="LATEST"):
        load_model_version(store_uri, None, tmp_path / "cache")


def test_s3_layout_writes_latest_after_the_version(s3_store, moto_endpoint, tmp_path):
    save_model_version(make_model_dir(tmp_path / "m", "a"), s3_store, "2026-03-01", DATA_HASH)
    bucket = s3_store[len("s3://") :].split("/")[0]
    keys = {o["Key"] for o in boto3.client("s3", endpoint_url=moto_endpoint).list_objects_v2(Bucket=bucket)["Contents"]}
    prefix = "promoflow/prod/promo_response"
    assert keys == {
        f"{prefix}/LATEST",
        f"{prefix}/2026-03-01-0123456789ab/_MANIFEST.json",
        f"{prefix}/2026-03-01-0123456789ab/response_model.keras",
        f"{prefix}/2026-03-01-0123456789ab/response_model.json",
        f"{prefix}/2026-03-01-0123456789ab/assets/vocab.txt",
    }


def test_a_corrupted_cache_copy_is_fetched_again(tmp_path):
    store = str(tmp_path / "store")
    version = save_model_version(make_model_dir(tmp_path / "m", "good"), store, "2026-03-01", DATA_HASH)
    local = load_model_version(store, version, tmp_path / "cache")
    (local / "response_model.keras").write_bytes(b"truncated")
    again = load_model_version(store, version, tmp_path / "cache")
    assert read_tree(again) == read_tree(tmp_path / "m")


def test_bad_run_date_and_hash_are_rejected(tmp_path):
    model_dir = make_model_dir(tmp_path / "m", "a")
    with pytest.raises(ValueError, match="run_date"):
        save_model_version(model_dir, str(tmp_path / "store"), "03/01/2026", DATA_HASH)
    with pytest.raises(ValueError, match="data_hash"):
        save_model_version(model_dir, str(tmp_path / "store"), "2026-03-01", "../etc")
