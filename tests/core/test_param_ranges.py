"""Every numeric key of params.yaml states its allowed range, and every value outside it (or of the
wrong type) ends in one ConfigError naming the key and the range; a stage run with such a
params.yaml exits with code 2, one "params.yaml: ..." line and no traceback, and writes nothing."""
from __future__ import annotations

import copy
import dataclasses
import os
import re
import subprocess
import sys
import typing

import pytest
import yaml

from pipeline.core import config
from tests import builders


def _sections() -> dict[str, type]:
    from pipeline.audit.audit import AuditConfig
    from pipeline.crop.crop import CropConfig
    from pipeline.demo.phantoms import PhantomsConfig
    from pipeline.gan.generate import GenerateConfig
    from pipeline.gan.train import TrainConfig
    from pipeline.ingest.ingest import IngestConfig
    from pipeline.metrics.evaluate import EvaluateConfig
    from pipeline.reader.config import ReaderStudyConfig
    from pipeline.release.release import ReleaseConfig
    from pipeline.variants.letterbox import LetterboxConfig
    from pipeline.variants.split import SplitConfig
    from pipeline.sr.train import SRConfig

    return {"train_sr": SRConfig, "phantoms": PhantomsConfig, "ingest": IngestConfig, "audit": AuditConfig, "crop": CropConfig,
            "letterbox": LetterboxConfig, "split": SplitConfig, "train": TrainConfig, "generate": GenerateConfig,
            "evaluate": EvaluateConfig, "release": ReleaseConfig, "reader_study": ReaderStudyConfig}


def _numeric_leaves(node, path=()):
    """(path, value) of every number in params.yaml (list items included)."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _numeric_leaves(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _numeric_leaves(v, path + (i,))
    elif isinstance(node, (int, float)) and not isinstance(node, bool):
        yield path, node


def _key(path) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def _field_range(path) -> config.Range:
    """The range the dataclass field behind ``path`` states (a list's range holds for each item)."""
    if path == ("seed",):
        return config.SEED_RANGE
    if path[0] == "variants":
        cls, rest = config.Variant, path[2:]
    elif path[:2] == ("train", "overrides"):
        cls, rest = _sections()["train"], path[3:]
    else:
        cls, rest = _sections()[path[0]], path[1:]
    for name in rest:
        if isinstance(name, int):
            continue
        hint = typing.get_type_hints(cls)[name]
        if dataclasses.is_dataclass(hint):
            cls = hint
            continue
        rng = config.range_of({f.name: f for f in dataclasses.fields(cls)}[name])
        assert rng is not None, f"{_key(path)}: no range stated beside the field (config.param)"
        return rng
    raise AssertionError(f"{_key(path)}: not a field")


def _outside(rng: config.Range, value):
    """A value just outside ``rng`` of the type of ``value``."""
    step = 1 if isinstance(value, int) else 0.5
    if rng.ge is not None:
        return rng.ge - step
    if rng.gt is not None:
        return rng.gt
    if rng.le is not None:
        return rng.le + step
    assert rng.lt is not None, "a range without bounds"
    return rng.lt


def _build(params: dict, path) -> None:
    """What the stages do with params.yaml, for the section of ``path``."""
    if path[0] == "seed":
        config.seed(params)
    elif path[0] == "variants":
        config.variants(params)
    elif path[:2] == ("train", "overrides"):
        config.stage_config("train", _sections()["train"], params).for_variant(path[2], config.variants(params))
    else:
        config.stage_config(path[0], _sections()[path[0]], params)


def _with(params: dict, path, value) -> dict:
    out = copy.deepcopy(params)
    node = out
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    return out


@pytest.fixture(scope="module")
def params(repo_root):
    return config.load_params(repo_root / "params.yaml")


def test_every_section_and_numeric_key_is_walked(params):
    keys = {path[0] for path, _ in _numeric_leaves(params)}
    assert keys == set(config.SECTIONS) - {"release"}, "release has no numeric key"
    assert len(list(_numeric_leaves(params))) > 120


def test_every_numeric_field_states_a_range():
    """Those params.yaml leaves out too (their defaults hold): a value given for one is checked the same."""
    def walk(cls, prefix):
        for f in dataclasses.fields(cls):
            hint = typing.get_type_hints(cls)[f.name]
            if dataclasses.is_dataclass(hint):
                yield from walk(hint, f"{prefix}.{f.name}")
            elif {int, float} & set(typing.get_args(hint) + (hint,)) or hint in (list[int], list[float]):
                yield f"{prefix}.{f.name}", config.range_of(f)

    found = dict(kv for section, cls in _sections().items() for kv in walk(cls, section))
    found |= dict(walk(config.Variant, "variants.<name>"))
    assert len(found) > 120 and not [k for k, rng in found.items() if rng is None]


def test_every_out_of_range_value_names_its_key_and_range(params):
    wrong = []
    for path, value in _numeric_leaves(params):
        _build(params, path)  # as it is: fine
        rng = _field_range(path)
        bad = _outside(rng, value)
        try:
            _build(_with(params, path, bad), path)
            wrong.append(f"{_key(path)} = {bad!r}: accepted")
        except config.ConfigError as e:
            expected = f"{_key(path)}: {bad!r} is out of range (allowed: {rng})"
            if str(e) not in (expected, expected.replace(f" {bad!r} ", f" {float(bad)!r} ")):  # a float field
                wrong.append(f"{_key(path)} = {bad!r}: {e} (expected: {expected})")
        if rng.lt is None and rng.le is None and isinstance(value, float):  # no upper bound: NaN is still refused
            with pytest.raises(config.ConfigError, match="nan is out of range"):
                _build(_with(params, path, float("nan")), path)
    assert not wrong, "\n".join(wrong)


def test_every_value_of_the_wrong_type_names_its_key(params):
    for path, _ in _numeric_leaves(params):
        with pytest.raises(config.ConfigError, match="^" + re.escape(_key(path)) + ": expected"):
            _build(_with(params, path, "many"), path)


def test_a_dataclass_check_becomes_a_config_error_naming_the_section(params):
    with pytest.raises(config.ConfigError, match=r"^train: unknown DiffAugment op"):   # a ValueError inside
        _build(_with(params, ("train", "diffaugment"), "colour"), ("train",))
    with pytest.raises(config.ConfigError, match=r"^split: train \+ val \+ test must sum to 1"):
        _build(_with(params, ("split", "val"), 0.5), ("split",))
    with pytest.raises(config.ConfigError, match=r"^crop.fallback must be \[x0, y0, x1, y1\] with x0 < x1"):
        _build(_with(params, ("crop", "fallback"), [0.6, 0.0, 0.4, 1.0]), ("crop",))
    with pytest.raises(config.ConfigError, match=r"^crop.up: expected 2 numbers, got 3"):
        _build(_with(params, ("crop", "up"), [0.0, 0.5, 0.5]), ("crop",))


# stage, its argument, the bad key and value, what stderr says
BAD_RUNS = [
    ("train", "full_16x9", ("train", "steps"), 0, "params.yaml: train.steps: 0 is out of range (allowed: >= 1)"),
    ("train", "full_16x9", ("train", "overrides", "full_16x9", "lr"), 0,
     "params.yaml: train.overrides.full_16x9.lr: 0.0 is out of range (allowed: > 0)"),
    ("train", "full_16x9", ("train", "diffaugment"), "colour", "params.yaml: train: unknown DiffAugment op"),
    ("generate", "full_16x9", ("generate", "batch"), 0, "params.yaml: generate.batch: 0 is out of range (allowed: >= 1)"),
    ("ingest", None, ("ingest", "png_compression"), 12,
     "params.yaml: ingest.png_compression: 12 is out of range (allowed: [0, 9])"),
    ("evaluate", None, ("evaluate", "c2st", "folds"), 1,
     "params.yaml: evaluate.c2st.folds: 1 is out of range (allowed: >= 2)"),
    ("split", None, ("seed",), -1, "params.yaml: seed: -1 is out of range (allowed: [0, 4294967296))"),
]


@pytest.mark.parametrize("stage,arg,path,value,message", BAD_RUNS, ids=[f"{r[0]}:{_key(r[2])}" for r in BAD_RUNS])
def test_a_stage_with_a_bad_value_exits_2_without_a_traceback(repo_root, tmp_path, params, stage, arg, path, value,
                                                             message):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(_with(params, path, value), sort_keys=False))
    env = builders.env() | {"PYTHONPATH": str(repo_root)}
    r = subprocess.run([sys.executable, "-m", f"stages.{stage}", *filter(None, [arg])], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stderr and r.stderr.startswith(message), r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert sorted(os.listdir(tmp_path)) == ["params.yaml"], "nothing written"
