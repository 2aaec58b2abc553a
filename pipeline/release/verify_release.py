"""Check a received release (folder or .tar.gz): every checksum, manifest.csv agrees with the files,
the dataset card is present. Each problem names the file."""
from __future__ import annotations

import csv
import tarfile
import tempfile
from pathlib import Path

from pipeline.core.tables import sha256_file

REQUIRED = ["bagit.txt", "bag-info.txt", "manifest-sha256.txt", "tagmanifest-sha256.txt",
            "DATASET_CARD.md", "manifest.csv"]


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
    return problems


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
            tops = [p for p in Path(tmp).iterdir()]
            if len(tops) != 1 or not tops[0].is_dir():
                return [f"{path.name}: expected one release folder inside, found {sorted(p.name for p in tops)}"]
            return verify_bag(tops[0])
    if not path.exists():
        return [f"{path}: does not exist"]
    return verify_bag(path)
