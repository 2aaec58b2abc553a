"""The ``train_sr@V`` stage's I/O: the variant's full-size train images in, ``models/V/sr/`` out."""
from __future__ import annotations

import json
import shutil

from pipeline.core import atomic, config
from pipeline.core.layout import Layout
from pipeline.gan.trainset import load_train_images
from pipeline.sr.train import SRConfig, train_sr

OFF = "off.json"


def run_train_sr(cfg: SRConfig, name: str, variant: config.Variant, seed: int, layout: Layout) -> dict:
    out = layout.sr_model(name)
    if not variant.sr_scale:
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        atomic.write_text(out / OFF, json.dumps({"variant": name, "sr_scale": 0}) + "\n")
        return {"variant": name, "sr": "off"}
    (out / OFF).unlink(missing_ok=True)
    h, w = variant.delivered
    images, _ = load_train_images(layout.variant(name) / "images_full", layout.split_csv, h, w)
    result = train_sr(cfg, variant.sr_scale, images, seed, out, name)
    return {k: v for k, v in result.items() if k not in ("generator", "history")}

