"""Check a received release (folder or .tar.gz): it must be exactly the package, nothing more.

Every checksum (bagit's own validation: completeness, payload oxum, every manifest and tag manifest),
manifest.csv agrees with the files, the dataset card is present, and nothing else is there: no
file outside the package's list (an extra ``tagmanifest-md5.txt`` too), no empty folder, no
symbolic link or special file (a payload file replaced by a link to identical content fails),
and a .tar.gz holds only plain files and folders under one release folder. Each problem names the
file."""
from __future__ import annotations

import csv
import os
import stat
import tarfile
import tempfile
from pathlib import Path

from pipeline.core.tables import sha256_file

REQUIRED = ["bagit.txt", "bag-info.txt", "manifest-sha256.txt", "tagmanifest-sha256.txt",
            "DATASET_CARD.md", "manifest.csv"]
OPTIONAL = ["contact_sheet.png"]


def _shape_problems(bag: Path) -> list[str]:
    """Anything in the folder that is not a plain file or a non-empty folder of the package."""
    problems = []
    allowed_top = set(REQUIRED) | set(OPTIONAL) | {"data"}
    for root, dirs, files in os.walk(bag, followlinks=False):
        rel_root = Path(root).relative_to(bag)
        for name in sorted(dirs + files):
            p = Path(root) / name
            rel = (rel_root / name).as_posix()
            st = os.lstat(p)
            if rel_root == Path(".") and name not in allowed_top:
                problems.append(f"{rel}: not part of the package (unexpected {'folder' if stat.S_ISDIR(st.st_mode) else 'file'})")
            if stat.S_ISLNK(st.st_mode):
                problems.append(f"{rel}: a symbolic link (a release holds only plain files)")
            elif stat.S_ISDIR(st.st_mode):
                if not os.listdir(p):
                    problems.append(f"{rel}/: an empty folder")
            elif not stat.S_ISREG(st.st_mode):
                problems.append(f"{rel}: not a plain file")
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(root, d))]
    if not (bag / "data").is_dir() or (bag / "data").is_symlink():
        problems.append("data/: missing (no payload folder)")
    return problems


def _bagit_problems(bag: Path) -> list[str]:
    import bagit

    try:
        bagit.Bag(str(bag)).validate(processes=1)
    except bagit.BagValidationError as e:
        details = getattr(e, "details", None) or []
        return [f"bagit: {d}" for d in details] or [f"bagit: {e.message}"]
    except bagit.BagError as e:
        return [f"bagit: {e}"]
    return []


def _read_checksums(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            digest, name = line.strip().split(None, 1)
            out[name.strip()] = digest.lower()
    return out


def verify_bag(bag: Path) -> list[str]:
    """Problems found in an unpacked release folder (empty list: it verifies)."""
    bag = Path(bag)
    if not bag.is_dir():
        return [f"{bag}: not a folder"]
    problems = [f"{name}: missing" for name in REQUIRED if not (bag / name).is_file()]
    if problems:
        return problems
    problems = _shape_problems(bag)
    payload = _read_checksums(bag / "manifest-sha256.txt")
    tags = _read_checksums(bag / "tagmanifest-sha256.txt")
    listed = {**payload, **tags}
    for name, digest in sorted(listed.items()):
        p = bag / name
        if not p.is_file():
            problems.append(f"{name}: listed in the checksums but missing")
        elif sha256_file(p) != digest:
            problems.append(f"{name}: checksum mismatch (file changed or corrupted)")
    for p in sorted(bag.rglob("*")):
        rel = p.relative_to(bag).as_posix()
        if p.is_file() and rel not in listed and not rel.startswith("tagmanifest-"):
            problems.append(f"{rel}: not listed in the bag's checksums (unexpected file)")
    not_payload = [n for n in payload if not n.startswith("data/")]
    problems += [f"{n}: payload checksum entry outside data/" for n in not_payload]

    with open(bag / "manifest.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    included = {r["file"]: r for r in rows if r.get("status") == "included"}
    for name, row in sorted(included.items()):
        if name not in payload:
            problems.append(f"{name}: in manifest.csv but not in the bag's payload")
        elif row.get("sha256", "").lower() != payload[name]:
            problems.append(f"{name}: manifest.csv sha256 differs from the bag's checksum")
    for name in sorted(set(payload) - set(included)):
        problems.append(f"{name}: in the payload but not listed in manifest.csv")
    for r in rows:
        if r.get("status") == "excluded" and not r.get("reason"):
            problems.append(f"{r.get('file')}: excluded without a reason in manifest.csv")
    card = (bag / "DATASET_CARD.md").read_text(encoding="utf-8", errors="replace")
    if "synthetic" not in card.lower():
        problems.append("DATASET_CARD.md: does not say the images are synthetic")
    return problems + _bagit_problems(bag)


def verify(path: str | Path) -> list[str]:
    """Verify a release folder or its .tar.gz archive."""
    path = Path(path)
    if path.is_file() and path.name.endswith((".tar.gz", ".tgz")):
        with tempfile.TemporaryDirectory() as tmp:
            try:
                with tarfile.open(path, "r:gz") as tar:
                    tar.extractall(tmp, filter="data")
            except (tarfile.TarError, OSError, EOFError) as e:
                return [f"{path.name}: cannot unpack ({type(e).__name__}: {e})"]
            try:
                with tarfile.open(path, "r:gz") as tar:
                    members = tar.getmembers()
            except (tarfile.TarError, OSError, EOFError) as e:
                return [f"{path.name}: cannot unpack ({type(e).__name__})"]
            bad = [f"{path.name}: {m.name}: {'a link' if m.issym() or m.islnk() else 'not a plain file'} in the archive"
                   for m in members if not (m.isfile() or m.isdir())]
            tops = [p for p in Path(tmp).iterdir()]
            if len(tops) != 1 or not tops[0].is_dir():
                return [f"{path.name}: expected one release folder inside, found {sorted(p.name for p in tops)}"]
            return bad + verify_bag(tops[0])
    if not path.exists():
        return [f"{path}: does not exist"]
    return verify_bag(path)
