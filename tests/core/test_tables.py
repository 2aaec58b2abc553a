import hashlib

import pytest

from pipeline.core import tables


def test_write_csv_round_trips_and_leaves_no_temp(tmp_path):
    path = tmp_path / "t.csv"
    tables.write_csv(path, ["a", "b"], [{"a": 1, "b": "x", "extra": "dropped"}, {"a": 2, "b": ""}])
    assert tables.read_csv(path) == [{"a": "1", "b": "x"}, {"a": "2", "b": ""}]
    assert path.read_text().splitlines()[0] == "a,b"
    assert [p.name for p in tmp_path.iterdir()] == ["t.csv"]


def test_sha256_file_is_the_digest_of_the_bytes(tmp_path):
    data = bytes(range(256)) * 5000  # more than one 1 MiB chunk
    (tmp_path / "f").write_bytes(data)
    assert tables.sha256_file(tmp_path / "f") == hashlib.sha256(data).hexdigest()


def test_read_seeds_names_the_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="seeds.csv is missing: run the generate stage"):
        tables.read_seeds(tmp_path)
    tables.write_csv(tmp_path / "seeds.csv", tables.SEEDS_COLUMNS, [{"file": "a.png", "seed": 7, "variant": "v",
                                                                     "checkpoint_sha256": "0" * 64}])
    assert tables.read_seeds(tmp_path)[0]["seed"] == "7"


@pytest.mark.parametrize("value, flagged", [("1", True), ("True", True), (" yes ", True), (1, True),
                                            ("0", False), ("", False), (None, False), ("false", False)])
def test_is_flagged(value, flagged):
    assert tables.is_flagged(value) is flagged


def test_cpu_count_is_positive():
    assert tables.cpu_count() >= 1
