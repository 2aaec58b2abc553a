"""Generation: every image reproducible from its own seed, whatever the batch; 16- and 8-bit outputs."""
from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from pipeline.core import pngio
from pipeline.core.config import ConfigError, build
from pipeline.gan.generate import GenerateConfig, generate, latent, render
from pipeline.gan.models import build_generator, export_generator, load_generator
from tests.builders import model_config


@pytest.fixture(scope="module")
def generator_pt(tmp_path_factory):
    torch.manual_seed(0)
    cfg = model_config(z_dim=16, features=4, max_features=16)
    g = build_generator(cfg, 32, 64)
    path = tmp_path_factory.mktemp("gen") / "generator.pt"
    export_generator(path, g, cfg, step=0, variant="wide")
    return path


def test_writes_png16_png8_and_seeds(generator_pt, tmp_path):
    out = tmp_path / "wide"
    rows = generate(GenerateConfig(n=5, seed_base=100, batch=2), "wide", generator_pt, out, 32, 64,
                    progress=False)
    with open(out / "seeds.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert list(table[0]) == ["file", "seed", "variant", "checkpoint_sha256"]
    assert [int(r["seed"]) for r in table] == [100, 101, 102, 103, 104]
    _, info = load_generator(generator_pt)
    assert {r["checkpoint_sha256"] for r in table} == {info["checkpoint_sha256"]}
    assert {r["variant"] for r in table} == {"wide"}
    assert len(rows) == 5
    for r in table:
        img16 = pngio.read_png16(out / "png16" / r["file"])
        img8 = pngio.read_png16(out / "png8" / r["file"]) // 257
        assert img16.shape == (32, 64) and img16.dtype == np.uint16
        assert np.abs(np.round(img16 / 257.0) - img8).max() <= 1
    assert not list(tmp_path.glob(".*tmp*")), "temporary folders left behind"


def test_image_reproducible_alone_whatever_the_batch(generator_pt, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    generate(GenerateConfig(n=7, seed_base=5, batch=7), "wide", generator_pt, a, progress=False)
    generate(GenerateConfig(n=7, seed_base=5, batch=3), "wide", generator_pt, b, progress=False)
    g, _ = load_generator(generator_pt)
    alone = render(g, [5 + 4], batch=1, device=torch.device("cpu"))[0]   # image 4, by its seed only
    for name in ("syn_000000.png", "syn_000004.png", "syn_000006.png"):
        assert np.array_equal(pngio.read_png16(a / "png16" / name), pngio.read_png16(b / "png16" / name))
    assert np.array_equal(pngio.read_png16(a / "png16" / "syn_000004.png"), alone)
    # distinct seeds give distinct images
    assert not np.array_equal(pngio.read_png16(a / "png16" / "syn_000000.png"),
                              pngio.read_png16(a / "png16" / "syn_000001.png"))


def test_latent_depends_on_seed_only():
    assert torch.equal(latent(42, 8), latent(42, 8))
    assert not torch.equal(latent(42, 8), latent(43, 8))


def test_geometry_mismatch_is_a_clear_error(generator_pt, tmp_path):
    with pytest.raises(ValueError, match="32x64.*64x64"):
        generate(GenerateConfig(n=2), "wide", generator_pt, tmp_path / "x", 64, 64, progress=False)
    assert not (tmp_path / "x").exists()


def test_bad_config():
    with pytest.raises(ConfigError, match=r"generate.n: 0 is out of range \(allowed: >= 1\)"):
        build(GenerateConfig, {"n": 0}, "generate")
    with pytest.raises(ConfigError, match="generate.device"):
        build(GenerateConfig, {"device": "gpu"}, "generate")
