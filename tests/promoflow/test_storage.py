"""Local folders and s3:// (boto3 against a moto server) behind one interface."""

from __future__ import annotations

import boto3
import pytest

from promoflow import storage


def _folder(tmp_path, name, files):
    folder = tmp_path / name
    folder.mkdir()
    for file_name, data in files.items():
        (folder / file_name).write_bytes(data)
    return folder


@pytest.fixture(params=["local", "s3"])
def root(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "store")
    return f"s3://{request.getfixturevalue('s3_bucket')}/prefix"


def test_publish_dir_replaces_the_whole_folder(root, tmp_path):
    store = storage.storage_for(root)
    target = storage.join(root, "promo_assignments", "run_date=2026-10-31")
    store.publish_dir(_folder(tmp_path, "v1", {"a.parquet": b"1", "stale.csv": b"old", "_SUCCESS": b""}), target)
    store.publish_dir(_folder(tmp_path, "v2", {"a.parquet": b"2", "_SUCCESS": b""}), target)
    assert [f.name for f in store.list_files(target)] == ["a.parquet"]
    assert store.read_bytes(storage.join(target, "a.parquet")) == b"2"
    assert store.exists(storage.join(target, "_SUCCESS"))


def test_list_dirs_and_files_skip_hidden_and_markers(root, tmp_path):
    store = storage.storage_for(root)
    for day in ("dt=2026-10-01", "dt=2026-10-02"):
        store.write_bytes(storage.join(root, "events", day, "part-0.parquet"), b"x")
    store.write_bytes(storage.join(root, "events", "_tmp", "x"), b"x")
    store.write_bytes(storage.join(root, "events", "dt=2026-10-01", "_SUCCESS"), b"")
    assert store.list_dirs(storage.join(root, "events")) == ["dt=2026-10-01", "dt=2026-10-02"]
    files = store.list_files(storage.join(root, "events", "dt=2026-10-01"))
    assert [(f.name, f.size) for f in files] == [("part-0.parquet", 1)]
    store.download(files[0].uri, tmp_path / "copy")
    assert (tmp_path / "copy").read_bytes() == b"x"


def test_s3_goes_through_the_configured_endpoint(s3_bucket, moto_endpoint):
    store = storage.storage_for(f"s3://{s3_bucket}/p")
    store.write_bytes(f"s3://{s3_bucket}/p/k.txt", b"hello")
    body = boto3.client("s3", endpoint_url=moto_endpoint).get_object(Bucket=s3_bucket, Key="p/k.txt")["Body"].read()
    assert body == b"hello"
