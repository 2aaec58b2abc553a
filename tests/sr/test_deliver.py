"""Delivery at full size: generate through the SR stage, evaluate at both sizes, study at full size."""
import json

import numpy as np
import pytest
import torch

from pipeline.core import pngio
from pipeline.core.layout import Layout
from pipeline.demo import phantoms
from pipeline.gan.generate import GenerateConfig, generate
from pipeline.gan.models import build_generator, export_generator
from pipeline.metrics.c2st import C2STConfig
from pipeline.metrics.evaluate import EvaluateConfig, run_evaluate
from pipeline.metrics.patches import PatchConfig
from pipeline.sr.deliver import generate_full_size
from pipeline.sr.models import SRGenerator, SRModelConfig, export_sr
from tests.builders import model_config, write_split


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A variant 16x32 delivered at 64x128 (sr_scale 4): real images at both sizes, a split, a GAN
    and an (untrained) SR export, and the synthetic images generated through both."""
    root = tmp_path_factory.mktemp("sr_project")
    rng = np.random.default_rng(5)
    vdir = root / "data" / "variants" / "wide"
    rows = []
    for k in range(24):
        iid = f"{k:016x}"
        full = phantoms.render_opg(rng, 64, 128)[0]
        pngio.write_png16(vdir / "images_full" / f"{iid}.png", full)
        pngio.write_png16(vdir / "images" / f"{iid}.png", full.reshape(16, 4, 32, 4).mean(axis=(1, 3)))
        rows.append({"image_id": iid, "split": "train" if k < 14 else ("val" if k < 19 else "test"), "group": iid})
    write_split(root, rows)
    torch.manual_seed(0)
    mcfg = model_config(z_dim=8, features=4, max_features=8)
    export_generator(root / "generator.pt", build_generator(mcfg, 16, 32), mcfg, step=0, variant="wide")
    sr = SRGenerator(SRModelConfig(scale=4, features=8, blocks=1, noise=True, critic_layers=2))
    torch.nn.init.normal_(sr.tail2.weight, std=0.02)
    export_sr(root / "sr.pt", sr, step=0, variant="wide")
    lay = Layout(root)
    generate_full_size(GenerateConfig(n=10, seed_base=50), "wide", root / "generator.pt", root / "sr.pt",
                       lay.synthetic("wide"), tile=7, height=16, width=32, progress=False)
    return root


def test_full_size_images_come_with_their_low_res_originals(project):
    syn = Layout(project).synthetic("wide")
    meta = json.loads((syn / "sr.json").read_text())
    assert meta["scale"] == 4 and meta["full"] == [64, 128] and meta["lowres"] == [16, 32]
    for k in range(10):
        name = f"syn_{k:06d}.png"
        full, low = pngio.read_float01(syn / "png16" / name), pngio.read_float01(syn / "lowres" / name)
        assert full.shape == (64, 128) and pngio.read_png16(syn / "png8" / name).shape == (64, 128)
        assert np.abs(full.reshape(16, 4, 32, 4).mean(axis=(1, 3)) - low).mean() < 2e-3   # consistency


def test_the_low_res_images_are_what_generate_alone_draws(project, tmp_path):
    """The SR stage changes no GAN image: generate without SR gives the same low-res images."""
    generate(GenerateConfig(n=10, seed_base=50), "wide", project / "generator.pt", tmp_path / "plain", 16, 32,
             progress=False)
    syn = Layout(project).synthetic("wide")
    for k in range(10):
        name = f"syn_{k:06d}.png"
        assert np.array_equal(pngio.read_png16(tmp_path / "plain" / "png16" / name), pngio.read_png16(syn / "lowres" / name))


def test_evaluate_scores_whole_images_scaled_down_and_patches_at_full_size(project):
    cfg = EvaluateConfig(c2st=C2STConfig(epochs=3, folds=3), patches=PatchConfig(size=32, per_image=2))
    m = run_evaluate(cfg, ["wide"], seed=1, layout=Layout(project), workers=1)["wide"]
    assert m["images"]["synthetic"] == 10
    fs = m["full_size"]
    assert fs["size"] == "64x128" and fs["patch"] == 32
    for name in ("patch_c2st_accuracy", "patch_precision", "patch_recall", "patch_density", "patch_coverage"):
        lo, hi = fs[name]["interval"]
        assert lo <= fs[name]["value"] <= hi and "reference" in fs[name]
    assert len(fs["swd_levels"]["value"]) == len(fs["swd_levels"]["reference"]) == len(fs["swd_levels"]["level_sizes"])
    assert fs["swd_levels"]["level_sizes"][0] == "64x128"
    assert fs["consistency_mae"]["value"] < 2e-3


def test_the_reader_study_shows_real_images_at_the_delivered_size(project):
    from pipeline.reader.config import ReaderStudyConfig
    from pipeline.reader.images import delivered_scale, real_candidates
    lay = Layout(project)
    assert delivered_scale(lay, "wide") == 4
    cands = real_candidates(ReaderStudyConfig(variant="wide", splits=["val", "test"]), lay)
    assert cands and all(c.path.parent.name == "images_full" for c in cands)
    assert pngio.read_png16(cands[0].path).shape == (64, 128)
