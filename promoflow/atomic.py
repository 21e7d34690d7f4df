"""Atomic writes of local files: a reader sees the old file or the new one, never half of one.

A leaf module (standard library only), shared by the stages, ``ml/`` and ``spark_jobs/``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """A temporary sibling of ``path`` to write to; renamed over ``path`` on success, removed on error.

    The sibling is in the same folder (so the rename is atomic) and hidden (``.name.<token>.tmp``),
    so a crash leaves no file under the target's name and globs over ``*.parquet`` never see it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_with(path: Path, write: Callable[[Path], object]) -> Path:
    """``write(tmp)`` into a temporary sibling, then replace ``path`` with it."""
    with replacing(path) as tmp:
        write(tmp)
    return Path(path)


def write_bytes(path: Path, data: bytes) -> Path:
    return write_with(path, lambda tmp: tmp.write_bytes(data))


def write_text(path: Path, text: str) -> Path:
    return write_with(path, lambda tmp: tmp.write_text(text))
