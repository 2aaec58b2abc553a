import dataclasses
from dataclasses import dataclass, field

import pytest

from pipeline.core import config


@dataclass(frozen=True)
class Inner:
    a: int = 1
    b: float = 0.5


@dataclass(frozen=True)
class Outer:
    name: str
    inner: Inner = field(default_factory=Inner)
    sizes: list[int] = field(default_factory=list)
    mode: str | None = None


def test_build_fills_nested_and_defaults():
    cfg = config.build(Outer, {"name": "x", "inner": {"a": 3}, "sizes": [1, 2]})
    assert cfg == Outer(name="x", inner=Inner(a=3, b=0.5), sizes=[1, 2])
    assert isinstance(cfg.inner.b, float)


def test_unknown_key_is_an_error_naming_the_key():
    with pytest.raises(config.ConfigError, match="lr_typo"):
        config.build(Outer, {"name": "x", "lr_typo": 1})


def test_missing_required_and_wrong_types():
    with pytest.raises(config.ConfigError, match="name: missing"):
        config.build(Outer, {})
    with pytest.raises(config.ConfigError, match="inner.a"):
        config.build(Outer, {"name": "x", "inner": {"a": "three"}})
    with pytest.raises(config.ConfigError):
        config.build(Outer, {"name": "x", "inner": {"a": True}})  # bool is not an int here


def test_variants_and_stage_config(tmp_path):
    p = tmp_path / "params.yaml"
    p.write_text(
        "seed: 7\n"
        "variants:\n  v1: {source: full, aspect: '16:9', mode: letterbox, height: 72, width: 128}\n"
        "  bad: {source: full, aspect: '4:3', mode: letterbox, height: 1, width: 1}\n"
        "ingest: {raw_dir: x}\n"
    )
    params = config.load_params(p)
    assert config.seed(params) == 7
    with pytest.raises(config.ConfigError, match="4:3"):
        config.variants(params)
    del params["variants"]["bad"]
    v = config.variant("v1", params)
    assert (v.height, v.width, v.aspect) == (72, 128, "16:9")
    with pytest.raises(config.ConfigError, match="unknown variant"):
        config.variant("nope", params)
    from pipeline.ingest.ingest import IngestConfig

    assert config.stage_config("ingest", IngestConfig, params).raw_dir == "x"
    with pytest.raises(config.ConfigError, match="no 'audit' section"):
        config.stage_config("audit", IngestConfig, params)


def test_repo_params_build_for_every_variant(repo_root):
    params = config.load_params(repo_root / "params.yaml")
    assert isinstance(config.seed(params), int)
    assert config.variants(params), "params.yaml defines no variants"


def test_workers_env(monkeypatch):
    monkeypatch.setenv("DENTSYNTH_WORKERS", "3")
    assert config.workers() == 3
    assert config.workers(2) == 2
    monkeypatch.setenv("DENTSYNTH_WORKERS", "x")
    with pytest.raises(config.ConfigError):
        config.workers()


def test_params_are_read_as_dvc_reads_them(tmp_path):
    """`dvc exp run -S` rewrites params.yaml and may leave `16:9` unquoted: YAML 1.1 (PyYAML's
    default) would read it as the base-60 integer 969; DVC (YAML 1.2) and we read a string."""
    from pipeline.core import config

    p = tmp_path / "params.yaml"
    p.write_text("seed: 1\nvariants:\n  v: {source: full, aspect: 16:9, mode: letterbox, height: 72, width: 128}\n"
                 "train: {lr: 2e-4, decay: .5, n: 0x10}\n")
    params = config.load_params(p)
    assert config.variant("v", params).aspect == "16:9"
    assert params["train"] == {"lr": 2e-4, "decay": 0.5, "n": 16}
    # and exactly as DVC's own parser does, including what YAML 1.1 reads differently (off, 010)
    from dvc.utils.serialize import parse_yaml as dvc_parse_yaml

    text = "a: off\nb: on\nc: 010\nd: 16:9\ne: 1e-3\nf: [0.5, 99.5]\ng: true\nh: null\n"
    assert config.parse_yaml(text) == dvc_parse_yaml(text, "params.yaml")
    assert config.parse_yaml(text)["a"] == "off" and config.parse_yaml(text)["c"] == 10


def _stage_configs():
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

    return [("phantoms", PhantomsConfig), ("ingest", IngestConfig), ("audit", AuditConfig), ("crop", CropConfig),
            ("letterbox", LetterboxConfig), ("split", SplitConfig), ("train", TrainConfig),
            ("generate", GenerateConfig), ("evaluate", EvaluateConfig), ("release", ReleaseConfig),
            ("reader_study", ReaderStudyConfig)]


# values that belong to one project, not to the library: params.yaml sets them, the dataclass has none
# (release.license is required) or an empty one (train.overrides)
PROJECT_ONLY = {"train.overrides", "release.license", "release.contact", "release.organisation", "release.description"}


def _differences(a, b, prefix):
    out = []
    for f in dataclasses.fields(a):
        key, x, y = f"{prefix}.{f.name}", getattr(a, f.name), getattr(b, f.name)
        if dataclasses.is_dataclass(x):
            out += _differences(x, y, key)
        elif x != y and key not in PROJECT_ONLY:
            out.append(f"{key}: dataclass default {x!r}, params.yaml {y!r}")
    return out


def test_dataclass_defaults_equal_params_yaml(repo_root):
    """Defaults are stated once: where a dataclass carries a default, it is the params.yaml value."""
    params = config.load_params(repo_root / "params.yaml")
    diffs = []
    for section, cls in _stage_configs():
        from_params = config.build(cls, params[section], section)
        project = {k.split(".", 1)[1]: getattr(from_params, k.split(".", 1)[1])
                   for k in PROJECT_ONLY if k.startswith(section + ".")}
        diffs += _differences(cls(**{k: v for k, v in project.items() if k == "license"}), from_params, section)
    assert not diffs, "\n".join(diffs)


def test_unknown_keys_fail_with_their_name(repo_root):
    params = config.load_params(repo_root / "params.yaml")
    for section, cls in _stage_configs():
        bad = dict(params[section], typo_key=1)
        with pytest.raises(config.ConfigError, match=rf"{section}: unknown key\(s\) \['typo_key'\]"):
            config.build(cls, bad, section)


def test_unknown_top_level_section_fails(tmp_path, repo_root):
    text = (repo_root / "params.yaml").read_text()
    (tmp_path / "params.yaml").write_text(text + "\nevalute:\n  seed: 1\n")
    with pytest.raises(config.ConfigError, match=r"unknown section\(s\) \['evalute'\]"):
        config.load_params(tmp_path / "params.yaml")
    assert set(config.load_params(repo_root / "params.yaml")) <= set(config.SECTIONS)
