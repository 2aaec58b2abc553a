"""Atomic outputs: write to a temporary sibling, rename at the end.

A killed stage leaves at worst a ``.tmp-*`` sibling, never a half-written file or folder under
the final name, and the next write of the same output removes such leftovers: each temp sibling is
``flock``-ed by the process writing it (the kernel drops the lock when that process dies, however it
dies), so a sibling whose lock can be taken is stale, and one still locked belongs to a live writer
and is left alone.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator


def _tmp_sibling(path: Path, kind: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "dir":
        return Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    os.close(fd)
    return Path(name)


def _lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False


def remove_stale(path: str | os.PathLike) -> list[str]:
    """Remove the temp siblings of ``path`` (``.<name>.tmp-*``) that no live process holds; returns
    their names."""
    path = Path(path)
    prefix = f".{path.name}.tmp-"
    removed = []
    try:
        names = [n for n in os.listdir(path.parent) if n.startswith(prefix)]
    except OSError:
        return removed
    for name in sorted(names):
        p = path.parent / name
        try:
            fd = os.open(p, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            if not _lock(fd):
                continue  # a live writer holds it
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            removed.append(name)
        finally:
            os.close(fd)
    return removed


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    path = Path(path)
    tmp = _tmp_sibling(path, "file")
    try:
        with open(tmp, "wb") as f:
            _lock(f.fileno())
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def open_file(path: str | os.PathLike, mode: str = "w", **kwargs) -> Iterator:
    """``open()`` whose result appears under ``path`` only if the block finishes."""
    path = Path(path)
    tmp = _tmp_sibling(path, "file")
    try:
        with open(tmp, mode, **kwargs) as f:
            _lock(f.fileno())
            yield f
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary folder; on success it replaces ``path`` as a whole. Temp folders
    of ``path`` left by a killed run are removed first."""
    path = Path(path)
    remove_stale(path)
    tmp = _tmp_sibling(path, "dir")
    os.chmod(tmp, 0o755)
    fd = os.open(tmp, os.O_RDONLY)
    _lock(fd)  # held until the folder is renamed: marks it as in use for remove_stale
    try:
        try:
            yield tmp
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if path.exists():
            old = _tmp_sibling(path, "dir")
            os.rmdir(old)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        os.close(fd)
