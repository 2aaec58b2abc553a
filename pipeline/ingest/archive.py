"""The raw archive as a list of entries: every file, link and unreadable thing under ``raw_dir``.

One :class:`Entry` per thing a data steward would count: a regular file (read through any links),
a broken link, a link loop, a named pipe or device, a folder that cannot be listed, a link to a
folder that is walked already. Names are kept as bytes, so a name that is not valid UTF-8 is an
entry like any other (shown with ``\\x`` escapes). Folders are walked once, by their real
identity (device, inode): the real folders of the archive first, then the folders that links lead
to, so a link back into the archive or round a loop is one entry, not a second copy of the tree.
Folders themselves get no entry (an empty folder holds nothing to account for).

:func:`inventory` condenses the listing into a digest (names, kinds, sizes and content hashes) and
counts, never a name: the DVC ``inventory`` stage writes it, and ``ingest`` depends on that file
instead of on the archive folder, because DVC cannot hash an archive with a dangling link, a link
loop or a non-UTF-8 name (it stops with an error; see the module docstring of
:mod:`pipeline.ingest.ingest`).
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Entry:
    rel: bytes          # path below raw_dir, '/'-separated bytes
    path: bytes         # where to open it (through the links walked)
    problem: str = ""   # not a readable file: the manifest reason; '' for a regular file
    size: int = 0
    mtime_ns: int = 0
    inode: tuple[int, int] = (0, 0)

    @property
    def is_file(self) -> bool:
        return not self.problem

    @property
    def name_is_utf8(self) -> bool:
        try:
            self.rel.decode("utf-8")
            return True
        except UnicodeDecodeError:
            return False

    @property
    def display(self) -> str:
        """The relative path as text: UTF-8, undecodable bytes as ``\\xNN`` escapes."""
        return self.rel.decode("utf-8", "backslashreplace")


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def _stat_problem(e: OSError, is_link: bool) -> str:
    import errno

    if e.errno == errno.ELOOP:
        return "link loop: the link leads back to itself"
    if e.errno in (errno.ENOENT, errno.ENOTDIR) and is_link:
        return "broken link: its target does not exist"
    if e.errno in (errno.EACCES, errno.EPERM):
        return "unreadable: permission denied"
    return f"unreadable ({errno.errorcode.get(e.errno, 'I/O error')})"


def walk(raw_dir: str | os.PathLike) -> list[Entry]:
    """Every entry under ``raw_dir``, sorted by relative path (bytes)."""
    root = os.fsencode(os.fspath(raw_dir))
    try:
        st = os.stat(root)
    except OSError:
        st = None
    if st is None or not stat.S_ISDIR(st.st_mode):
        raise FileNotFoundError(f"ingest.raw_dir {os.fsdecode(root)} is not a folder")
    seen = {(st.st_dev, st.st_ino)}
    entries: list[Entry] = []
    real_dirs: list[tuple[bytes, bytes]] = [(b"", root)]
    linked_dirs: list[tuple[bytes, bytes, tuple[int, int]]] = []

    def scan(rel_dir: bytes, abs_dir: bytes) -> None:
        try:
            with os.scandir(abs_dir) as it:
                items = sorted(it, key=lambda d: d.name)
        except OSError as e:
            entries.append(Entry(rel_dir or b".", abs_dir, "folder cannot be listed: " + _stat_problem(e, False)))
            return
        for item in items:
            rel = rel_dir + b"/" + item.name if rel_dir else item.name
            path = os.path.join(abs_dir, item.name)
            try:
                is_link = item.is_symlink()
            except OSError:
                is_link = False
            try:
                st = os.stat(path)
            except OSError as e:
                entries.append(Entry(rel, path, _stat_problem(e, is_link)))
                continue
            key = (st.st_dev, st.st_ino)
            if stat.S_ISDIR(st.st_mode):
                if is_link:
                    linked_dirs.append((rel, path, key))  # after every real folder
                elif key not in seen:
                    seen.add(key)
                    real_dirs.append((rel, path))
                else:  # a bind mount of a folder already walked
                    entries.append(Entry(rel, path, "folder already walked under another path"))
            elif stat.S_ISREG(st.st_mode):
                entries.append(Entry(rel, path, "", st.st_size, st.st_mtime_ns, key))
            else:
                entries.append(Entry(rel, path, f"not a regular file: {_kind(st.st_mode)}"))

    while real_dirs or linked_dirs:
        while real_dirs:
            scan(*real_dirs.pop())
        if not linked_dirs:
            break
        linked_dirs.sort(key=lambda t: t[0])
        rel, path, key = linked_dirs.pop(0)
        if key in seen:
            entries.append(Entry(rel, path, "link to a folder walked already (its files are counted there)"))
        else:
            seen.add(key)
            scan(rel, path)
    return sorted(entries, key=lambda e: e.rel)


# extensions a pseudonym keeps (anything else could be part of a name: "John.Smith")
KNOWN_EXTENSIONS = {".dcm", ".dicom", ".ima", ".img", ".raw", ".png", ".jpg", ".jpeg", ".jpe", ".tif", ".tiff",
                    ".gif", ".bmp", ".webp", ".jp2", ".j2k", ".jpx", ".heic", ".avif", ".txt", ".csv", ".xml",
                    ".json", ".pdf", ".zip", ".gz", ".html", ".htm"}


def pseudonym(rel: bytes, key: str) -> str:
    """A keyed hash of a relative path (HMAC-SHA256 under ``key``), keeping a known file extension:
    the same path and key always give the same name, and nobody without the key can tell the name."""
    digest = hmac.new(key.encode("utf-8"), b"dentsynth-source-path\0" + rel, hashlib.sha256).hexdigest()[:20]
    ext = os.path.splitext(rel)[1].decode("utf-8", "replace").lower()
    return digest + (ext if ext in KNOWN_EXTENSIONS else "")


def file_sha256(path: bytes | str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def inventory(entries: list[Entry], cache_path: Path | None = None) -> dict:
    """Counts and one digest of the listing (relative names, problems, sizes, content hashes);
    no name, nothing that identifies a file. Content hashes are reused from ``cache_path`` (keyed
    by device, inode, size and mtime, as DVC's own state keeps them) when the file is unchanged."""
    cache: dict[str, str] = {}
    if cache_path is not None and cache_path.is_file():
        try:
            cache = json.loads(cache_path.read_text())
        except (OSError, ValueError):
            cache = {}
    fresh: dict[str, str] = {}
    h = hashlib.sha256()
    n_files = 0
    for e in entries:
        h.update(len(e.rel).to_bytes(8, "big") + e.rel)
        if e.is_file:
            n_files += 1
            k = f"{e.inode[0]}:{e.inode[1]}:{e.size}:{e.mtime_ns}"
            digest = cache.get(k)
            if digest is None:
                try:
                    digest = file_sha256(e.path)
                except OSError:
                    digest = "unreadable"
            fresh[k] = digest
            h.update(f"file {e.size} {digest}\n".encode())
        else:
            h.update(f"problem {e.problem}\n".encode())
    if cache_path is not None:
        try:
            cache_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache_path.with_name(cache_path.name + f".tmp-{os.getpid()}")
            tmp.write_text(json.dumps(fresh, sort_keys=True))
            os.replace(tmp, cache_path)
        except OSError:
            pass
    return {"entries": len(entries), "files": n_files, "other_entries": len(entries) - n_files,
            "digest": h.hexdigest()}
