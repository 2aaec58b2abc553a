"""The archive walk: one entry per thing, folders once by real identity; the inventory digest."""
import json
import os

import pytest

from pipeline.ingest import archive, ingest
from pipeline.ingest.ingest import IngestConfig


@pytest.fixture()
def tree(tmp_path):
    raw = tmp_path / "raw"
    (raw / "a" / "b").mkdir(parents=True)
    (raw / "a" / "b" / "x.png").write_bytes(b"x")
    (raw / "top.dcm").write_bytes(b"t")
    os.symlink("..", raw / "a" / "b" / "up")          # a loop back to a/
    os.symlink(raw / "a", raw / "alias_of_a")          # a second path to a real folder
    os.symlink("gone", raw / "dangling")
    os.symlink("me", raw / "me")                       # a link to itself
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "o.png").write_bytes(b"o")
    os.symlink(outside, raw / "ext")                   # a folder outside the archive: walked once
    os.symlink(outside, raw / "ext2")                  # ... and not twice
    with open(os.path.join(os.fsencode(str(raw)), b"n\xe9.png"), "wb") as f:
        f.write(b"n")
    return raw


def test_every_entry_once(tree):
    entries = {e.rel: e for e in archive.walk(tree)}
    files = {r for r, e in entries.items() if e.is_file}
    assert files == {b"a/b/x.png", b"top.dcm", b"ext/o.png", b"n\xe9.png"}
    problems = {r: e.problem for r, e in entries.items() if not e.is_file}
    assert set(problems) == {b"a/b/up", b"alias_of_a", b"dangling", b"me", b"ext2"}
    assert "walked already" in problems[b"a/b/up"] and "walked already" in problems[b"alias_of_a"]
    assert "walked already" in problems[b"ext2"]
    assert "broken link" in problems[b"dangling"] and "loop" in problems[b"me"]
    assert entries[b"n\xe9.png"].display == "n\\xe9.png" and not entries[b"n\xe9.png"].name_is_utf8
    assert [e.rel for e in archive.walk(tree)] == sorted(entries)


def test_missing_raw_dir_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="raw_dir"):
        archive.walk(tmp_path / "nope")


def test_inventory_has_no_names_and_follows_every_change(tree, tmp_path):
    cfg = IngestConfig(raw_dir=str(tree))
    cache = tmp_path / "cache.json"
    one = ingest.write_inventory(cfg, tmp_path / "inv.json", cache=cache)
    text = (tmp_path / "inv.json").read_text() + cache.read_text()
    assert "x.png" not in text and "top" not in text and json.loads((tmp_path / "inv.json").read_text()) == one
    assert one["entries"] == 9 and one["files"] == 4
    assert ingest.write_inventory(cfg, tmp_path / "inv.json", cache=cache) == one  # unchanged: same digest
    (tree / "top.dcm").write_bytes(b"T")                                            # same size, new content
    two = ingest.write_inventory(cfg, tmp_path / "inv.json", cache=cache)
    assert two["digest"] != one["digest"]
    (tree / "a" / "b" / "x.png").rename(tree / "a" / "b" / "y.png")                # a rename
    assert ingest.write_inventory(cfg, tmp_path / "inv.json")["digest"] != two["digest"]


def test_pseudonym_is_keyed_and_keeps_only_a_plain_extension():
    a = archive.pseudonym(b"Smith_John/1984-02-03.dcm", "k")
    assert a == archive.pseudonym(b"Smith_John/1984-02-03.dcm", "k") and a.endswith(".dcm")
    assert "smith" not in a.lower() and "1984" not in a
    assert a != archive.pseudonym(b"Smith_John/1984-02-03.dcm", "other")
    assert "." not in archive.pseudonym(b"Anna.Li", "k")  # not a file extension: could be a name


def test_a_change_after_the_inventory_is_noticed(tree, tmp_path):
    cfg = IngestConfig(raw_dir=str(tree))
    ingest.write_inventory(cfg, tmp_path / "inv.json")
    assert not ingest.archive_changed(cfg, tmp_path / "inv.json")
    assert not ingest.archive_changed(cfg, tmp_path / "none.json")  # no inventory: nothing to compare
    (tree / "late.png").write_bytes(b"l")
    assert ingest.archive_changed(cfg, tmp_path / "inv.json")
