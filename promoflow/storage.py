"""Local folders and s3:// URIs behind one small interface.

The landing zone, the marketing export and the model store may each be a local
folder or ``s3://bucket/prefix``. S3 goes through boto3 (endpoint from
``PROMO_S3_ENDPOINT_URL`` for MinIO or a moto server); Spark never reads S3
directly here: callers stage what Spark needs into the local lake first.

Every S3 request is retried with exponential backoff (botocore's standard mode,
``PROMO_S3_MAX_ATTEMPTS`` attempts, ``PROMO_S3_TIMEOUT_S`` connect and read
timeout); when the attempts are spent the call raises
:class:`StorageUnavailableError`, one paragraph naming the object and the fix.
"""

from __future__ import annotations

import functools
import os
import shutil
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promoflow import atomic


class StorageUnavailableError(RuntimeError):
    """An S3 request failed after its retries (endpoint down, timeouts, 5xx, denied)."""


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def join(uri: str, *parts: str) -> str:
    base = uri.rstrip("/")
    return "/".join([base, *[p.strip("/") for p in parts if p]])


@dataclass(frozen=True)
class FileInfo:
    uri: str
    name: str
    size: int
    version: str  # mtime_ns locally, ETag on S3: changes when the content is replaced


class Storage(ABC):
    """Operations the platform needs on a folder-like URI."""

    @abstractmethod
    def list_dirs(self, uri: str) -> list[str]: ...

    @abstractmethod
    def list_files(self, uri: str) -> list[FileInfo]: ...

    @abstractmethod
    def exists(self, uri: str) -> bool: ...

    @abstractmethod
    def download(self, uri: str, local_path: Path) -> None: ...

    @abstractmethod
    def upload(self, local_path: Path, uri: str) -> None: ...

    @abstractmethod
    def read_bytes(self, uri: str) -> bytes: ...

    @abstractmethod
    def write_bytes(self, uri: str, data: bytes) -> None: ...

    @abstractmethod
    def delete_prefix(self, uri: str) -> None: ...

    @abstractmethod
    def publish_dir(self, local_dir: Path, uri: str) -> None:
        """Replace the folder at ``uri`` with the files of ``local_dir``.

        Locally: copy to a sibling temp folder, then swap with two renames, so a
        reader sees the old folder, the new one or (for the instant between the
        renames) none, never a mix. On S3: delete ``_SUCCESS``, upload every
        file (each PUT replaces one object atomically), delete objects that the
        new version no longer has, and write ``_SUCCESS`` last: a folder with
        ``_SUCCESS`` is always complete; one without it is being (or failed
        being) written and must not be read.
        """
        ...


class LocalStorage(Storage):
    @staticmethod
    def _path(uri: str) -> Path:
        return Path(uri[len("file://") :] if uri.startswith("file://") else uri)

    def list_dirs(self, uri: str) -> list[str]:
        path = self._path(uri)
        if not path.is_dir():
            return []
        return sorted(p.name for p in path.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))

    def list_files(self, uri: str) -> list[FileInfo]:
        path = self._path(uri)
        if not path.is_dir():
            return []
        out = []
        for p in sorted(path.iterdir()):
            if p.is_file() and not p.name.startswith((".", "_")):
                st = p.stat()
                out.append(FileInfo(str(p), p.name, st.st_size, str(st.st_mtime_ns)))
        return out

    def exists(self, uri: str) -> bool:
        return self._path(uri).exists()

    def download(self, uri: str, local_path: Path) -> None:
        local_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self._path(uri), local_path)

    def upload(self, local_path: Path, uri: str) -> None:
        atomic.write_with(self._path(uri), lambda tmp: shutil.copyfile(local_path, tmp))

    def read_bytes(self, uri: str) -> bytes:
        return self._path(uri).read_bytes()

    def write_bytes(self, uri: str, data: bytes) -> None:
        atomic.write_bytes(self._path(uri), data)

    def delete_prefix(self, uri: str) -> None:
        path = self._path(uri)
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()

    def publish_dir(self, local_dir: Path, uri: str) -> None:
        target = self._path(uri)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = target.with_name(f".{target.name}.{uuid.uuid4().hex}.new")
        shutil.copytree(local_dir, staging)
        retired = target.with_name(f".{target.name}.{uuid.uuid4().hex}.old")
        if target.exists():
            os.replace(target, retired)
        os.replace(staging, target)
        if retired.exists():
            shutil.rmtree(retired)


def _s3_errors(method: Callable) -> Callable:
    """Turn botocore / boto3 failures (after botocore's own retries) into one readable paragraph."""

    @functools.wraps(method)
    def wrapper(self: S3Storage, uri: Any, *args, **kwargs):
        import boto3.exceptions
        import botocore.exceptions

        try:
            return method(self, uri, *args, **kwargs)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError, boto3.exceptions.Boto3Error) as err:
            target = args[0] if method.__name__ in ("upload", "publish_dir") and args else uri
            cause = getattr(err, "last_exception", None) or err  # s3transfer wraps the last attempt's error
            raise StorageUnavailableError(
                f"S3 {method.__name__} of {target} failed after {self.max_attempts} attempt(s) with backoff "
                f"({type(cause).__name__}: {' '.join(str(cause).split())}). Check the endpoint "
                f"({self.endpoint_url or 'AWS'}), credentials and network, then re-run the date; "
                "a partition or export is only ever marked complete after all of its files are through."
            ) from err

    return wrapper


class S3Storage(Storage):
    def __init__(self, endpoint_url: str | None = None, max_attempts: int = 5, timeout_s: float = 30.0):
        import boto3
        from botocore.config import Config

        self.endpoint_url = endpoint_url or None
        self.max_attempts = max_attempts
        config = Config(
            retries={"max_attempts": max_attempts, "mode": "standard"},
            connect_timeout=timeout_s,
            read_timeout=timeout_s,
        )
        self._client = boto3.client("s3", endpoint_url=self.endpoint_url, config=config)

    @staticmethod
    def _split(uri: str) -> tuple[str, str]:
        without = uri[len("s3://") :]
        bucket, _, key = without.partition("/")
        return bucket, key

    def _list(self, uri: str, delimiter: bool):
        bucket, key = self._split(uri)
        prefix = key.rstrip("/") + "/" if key else ""
        paginator = self._client.get_paginator("list_objects_v2")
        kwargs = {"Bucket": bucket, "Prefix": prefix}
        if delimiter:
            kwargs["Delimiter"] = "/"
        for page in paginator.paginate(**kwargs):
            yield bucket, prefix, page

    @_s3_errors
    def list_dirs(self, uri: str) -> list[str]:
        names = []
        for _, prefix, page in self._list(uri, delimiter=True):
            for cp in page.get("CommonPrefixes", []):
                name = cp["Prefix"][len(prefix) :].rstrip("/")
                if not name.startswith((".", "_")):
                    names.append(name)
        return sorted(names)

    @_s3_errors
    def list_files(self, uri: str) -> list[FileInfo]:
        out = []
        for bucket, prefix, page in self._list(uri, delimiter=True):
            for obj in page.get("Contents", []):
                name = obj["Key"][len(prefix) :]
                if name and not name.startswith((".", "_")):
                    out.append(FileInfo(f"s3://{bucket}/{obj['Key']}", name, int(obj["Size"]), obj["ETag"].strip('"')))
        return sorted(out, key=lambda f: f.name)

    @_s3_errors
    def exists(self, uri: str) -> bool:
        bucket, key = self._split(uri)
        resp = self._client.list_objects_v2(Bucket=bucket, Prefix=key, MaxKeys=1)
        return resp.get("KeyCount", 0) > 0

    @_s3_errors
    def download(self, uri: str, local_path: Path) -> None:
        bucket, key = self._split(uri)
        local_path.parent.mkdir(parents=True, exist_ok=True)
        self._client.download_file(bucket, key, str(local_path))

    @_s3_errors
    def upload(self, local_path: Path, uri: str) -> None:
        bucket, key = self._split(uri)
        self._client.upload_file(str(local_path), bucket, key)

    @_s3_errors
    def read_bytes(self, uri: str) -> bytes:
        bucket, key = self._split(uri)
        return self._client.get_object(Bucket=bucket, Key=key)["Body"].read()

    @_s3_errors
    def write_bytes(self, uri: str, data: bytes) -> None:
        bucket, key = self._split(uri)
        self._client.put_object(Bucket=bucket, Key=key, Body=data)

    @_s3_errors
    def delete_prefix(self, uri: str) -> None:
        for bucket, _, page in self._list(uri, delimiter=False):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                self._client.delete_objects(Bucket=bucket, Delete={"Objects": keys})

    @_s3_errors
    def publish_dir(self, local_dir: Path, uri: str) -> None:
        bucket, key = self._split(uri)
        prefix = key.rstrip("/") + "/"
        self._client.delete_object(Bucket=bucket, Key=prefix + "_SUCCESS")  # incomplete from here until the end
        new_keys = set()
        files = sorted(p for p in local_dir.rglob("*") if p.is_file() and p.name != "_SUCCESS")
        for path in files:
            object_key = prefix + path.relative_to(local_dir).as_posix()
            self._client.upload_file(str(path), bucket, object_key)
            new_keys.add(object_key)
        for _, _, page in self._list(uri, delimiter=False):
            stale = [{"Key": o["Key"]} for o in page.get("Contents", []) if o["Key"] not in new_keys]
            if stale:
                self._client.delete_objects(Bucket=bucket, Delete={"Objects": stale})
        self._client.put_object(Bucket=bucket, Key=prefix + "_SUCCESS", Body=b"")


def storage_for(uri: str, s3_endpoint_url: str = "", settings: Any = None) -> Storage:
    """The storage of ``uri``; ``settings`` (a :class:`promoflow.settings.Settings`) gives S3's retries and timeouts."""
    if is_s3(uri):
        return S3Storage(
            endpoint_url=s3_endpoint_url or os.environ.get("PROMO_S3_ENDPOINT_URL") or None,
            max_attempts=getattr(settings, "s3_max_attempts", 5),
            timeout_s=getattr(settings, "s3_timeout_s", 30.0),
        )
    return LocalStorage()
