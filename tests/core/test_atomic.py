import pytest

from pipeline.core import atomic


def test_write_text_replaces_whole_file(tmp_path):
    p = tmp_path / "sub" / "a.txt"
    atomic.write_text(p, "one")
    atomic.write_text(p, "two")
    assert p.read_text() == "two"
    assert [x.name for x in p.parent.iterdir()] == ["a.txt"]


def test_open_file_leaves_nothing_on_failure(tmp_path):
    p = tmp_path / "m.csv"
    with pytest.raises(RuntimeError):
        with atomic.open_file(p, "w") as f:
            f.write("half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_directory_swaps_in_only_on_success(tmp_path):
    out = tmp_path / "out"
    with atomic.directory(out) as tmp:
        (tmp / "x").write_text("1")
        assert not out.exists()
    assert (out / "x").read_text() == "1"
    with pytest.raises(KeyboardInterrupt):
        with atomic.directory(out) as tmp:
            (tmp / "y").write_text("2")
            raise KeyboardInterrupt
    assert sorted(p.name for p in out.iterdir()) == ["x"], "a killed run must keep the old output"
    assert [p.name for p in tmp_path.iterdir()] == ["out"], "no temp folder left behind"
    with atomic.directory(out) as tmp:
        (tmp / "z").write_text("3")
    assert sorted(p.name for p in out.iterdir()) == ["z"]
