"""bench.lock_diff: which stages of a run reproduced a committed dvc.lock, on tiny generated locks."""
from __future__ import annotations

import copy

import yaml

from bench import lock_diff


def _lock() -> dict:
    def stage(deps, outs, params=None):
        return {"cmd": "x", "deps": [{"path": p, "md5": m} for p, m in deps.items()],
                "params": {"params.yaml": params or {}}, "outs": [{"path": p, "md5": m} for p, m in outs.items()]}
    return {"schema": "2.0", "stages": {
        "phantoms": stage({"stages/phantoms.py": "c1"}, {"data/demo_raw": "r1.dir"}, {"seed": 1}),
        "split": stage({"data/demo_raw": "r1.dir"}, {"data/split": "s1.dir"}),
        "train@a": stage({"data/split/split.csv": "t0"}, {"models/a/generator.pt": "g1", "models/a/live/metrics.json": "m1"}),
        "generate@a": stage({"models/a/generator.pt": "g1"}, {"data/synthetic/a": "y1.dir"}),
        "reader_study": stage({"data/synthetic": "y1.dir"}, {"data/reader_study": "k1.dir"}),
    }}


def _files(tmp_path, committed, fresh):
    a, b = tmp_path / "a.lock", tmp_path / "b.lock"
    a.write_text(yaml.safe_dump(committed))
    b.write_text(yaml.safe_dump(fresh))
    return lock_diff.load(a), lock_diff.load(b)


def _out(lock, stage, path, md5):
    next(o for o in lock["stages"][stage]["outs"] if o["path"] == path)["md5"] = md5


def _dep(lock, stage, path, md5):
    next(d for d in lock["stages"][stage]["deps"] if d["path"] == path)["md5"] = md5


def test_identical_locks_reproduce_every_stage(tmp_path):
    a, b = _files(tmp_path, _lock(), _lock())
    assert all(r.reproduced and r.same_inputs for r in lock_diff.compare(a, b))
    assert lock_diff.failures(a, b, machine_too=True) == []


def test_by_design_varying_outputs_are_listed_but_not_failures(tmp_path):
    fresh = _lock()
    _out(fresh, "train@a", "models/a/live/metrics.json", "m2")     # the measured speed
    _out(fresh, "reader_study", "data/reader_study", "k2.dir")      # the OS-drawn passphrase
    a, b = _files(tmp_path, _lock(), fresh)
    rows = {r.name: r for r in lock_diff.compare(a, b)}
    assert rows["train@a"].reproduced and rows["train@a"].varying_outs == ["models/a/live/metrics.json"]
    assert rows["reader_study"].varying_outs == ["data/reader_study"]
    assert lock_diff.failures(a, b, machine_too=True) == []
    assert "(by design)" in lock_diff.table(list(rows.values()))


def test_an_early_stage_must_reproduce_anywhere(tmp_path):
    fresh = _lock()
    _out(fresh, "phantoms", "data/demo_raw", "r2.dir")
    _dep(fresh, "split", "data/demo_raw", "r2.dir")
    a, b = _files(tmp_path, _lock(), fresh)
    problems = lock_diff.failures(a, b)
    assert any(p.startswith("phantoms: same inputs, other outputs: data/demo_raw") for p in problems)
    assert any(p.startswith("split: inputs differ") for p in problems), problems


def test_other_weights_excuse_downstream_stages_only_off_the_machine(tmp_path):
    fresh = _lock()
    _out(fresh, "train@a", "models/a/generator.pt", "g2")
    _dep(fresh, "generate@a", "models/a/generator.pt", "g2")
    _out(fresh, "generate@a", "data/synthetic/a", "y2.dir")
    a, b = _files(tmp_path, _lock(), fresh)
    assert lock_diff.failures(a, b) == []                  # another machine: other weights, other images
    assert [p.split(":")[0] for p in lock_diff.failures(a, b, machine_too=True)] == ["train@a"]


def test_same_generator_must_give_the_same_images(tmp_path):
    fresh = _lock()
    _out(fresh, "generate@a", "data/synthetic/a", "y2.dir")
    a, b = _files(tmp_path, _lock(), fresh)
    assert lock_diff.failures(a, b) == ["generate@a: same inputs, other outputs: data/synthetic/a"]


def test_downstream_follows_deps_into_outputs(tmp_path):
    a, _ = _files(tmp_path, _lock(), _lock())
    assert lock_diff.downstream_of(a, lock_diff.MACHINE_DEPENDENT) == {"train@a", "generate@a", "reader_study"}


def test_a_stage_missing_from_either_lock_fails(tmp_path):
    fresh = copy.deepcopy(_lock())
    del fresh["stages"]["split"]
    a, b = _files(tmp_path, _lock(), fresh)
    assert "split: no entry in the fresh dvc.lock" in lock_diff.failures(a, b)


def test_cli_check_exit_code(tmp_path, capsys):
    fresh = _lock()
    _out(fresh, "phantoms", "data/demo_raw", "r2.dir")
    (tmp_path / "a").write_text(yaml.safe_dump(_lock()))
    (tmp_path / "b").write_text(yaml.safe_dump(fresh))
    assert lock_diff.main([str(tmp_path / "a"), str(tmp_path / "a"), "--check"]) == 0
    assert lock_diff.main([str(tmp_path / "a"), str(tmp_path / "b"), "--check"]) == 1
    assert "| phantoms | same | differ | data/demo_raw |" in capsys.readouterr().out
