"""The judge, judged: does the evaluate stage's C2ST catch images nobody would take for radiographs?

On a real archive (the pipeline's stages up to split, as ``bench.quality`` runs them), at one size:

1. a generator of a given recipe (default: the recipe before issue 27, ``--recipe-changes``) is
   trained for ``--budget-s`` CPU seconds with snapshots (an early run's stages);
2. each snapshot draws as many images as the held-out set has, and so do the failure modes of
   :mod:`bench.failures` (made from train images) and the real reference (train images);
3. every set is scored by :func:`pipeline.metrics.c2st.c2st` against the held-out set, with the
   params.yaml ``evaluate.c2st`` settings, each with its 95% interval and the judge's CPU time.

Writes ``<out>/judge.{md,json}`` (aggregates only: no picture of a real image).

    python -m bench.judge --raw /path/opgs --size 72x128 --budget-s 600
"""
from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bench.common import machine, markdown_table
from bench.quality import (REPO, equal_sets, heldout_images, parse_size, prepared, recipe, synthesise,
                           train_budget, variant_for)
from pipeline.core import atomic, config
from pipeline.gan.generate import GenerateConfig
from pipeline.gan.trainset import load_train_images
from pipeline.metrics.c2st import c2st
from pipeline.metrics.evaluate import EvaluateConfig
from bench.failures import failure_sets
from pipeline.metrics.intervals import mean_interval

# the recipe params.yaml stated before issue 27 (no layout basis, no minibatch std)
BEFORE = {"layout_basis": 0, "critic_mbstd": False, "layout_lr": 1.0}


def judge(sets: dict[str, np.ndarray], heldout: np.ndarray, ecfg: EvaluateConfig, seed: int) -> list[dict]:
    rows = []
    for name, images in sets.items():
        t0 = time.process_time()
        r = c2st(heldout, images, ecfg.c2st, seed + 1)
        lo, hi = mean_interval(r["correct"], ecfg.intervals, seed + 6)
        rows.append({"set": name, "images_per_class": r["images_per_class"], "c2st_accuracy": r["accuracy"],
                     "interval": [lo, hi], "auc": r["auc"], "epochs_median": float(np.median(r["epochs"])),
                     "judge_cpu_s": time.process_time() - t0})
        print(f"[bench.judge] {name:24s} C2ST {r['accuracy']:.3f} [{lo:.2f}-{hi:.2f}] AUC {r['auc']:.3f} "
              f"({rows[-1]['judge_cpu_s']:.0f} CPU-s)", flush=True)
    return rows


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--raw", type=Path, required=True, help="a folder of OPGs")
    ap.add_argument("--size", type=parse_size, default=(72, 128))
    ap.add_argument("--budget-s", type=float, default=600.0, help="CPU seconds of training (default 600)")
    ap.add_argument("--points", type=int, default=3, help="snapshots over the budget (default 3)")
    ap.add_argument("--recipe-changes", type=json.loads, default=BEFORE, metavar="JSON",
                    help="changes to params.yaml train for the judged run (default: the recipe before issue 27)")
    ap.add_argument("--work", type=Path, default=None, help="reuse the stages' outputs in WORK/<folder name>")
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--params", type=Path, default=REPO / "params.yaml")
    ap.add_argument("--out", type=Path, default=REPO / "reports" / "bench")
    args = ap.parse_args(argv)
    params = config.load_params(args.params)
    torch.set_num_threads(1)
    ecfg = config.stage_config("evaluate", EvaluateConfig, params)
    gcfg = config.stage_config("generate", GenerateConfig, params)
    seed = config.seed(params)
    h, w = args.size
    name, _ = variant_for(h, w)
    with contextlib.ExitStack() as stack:
        work = args.work / args.raw.name if args.work else Path(stack.enter_context(
            tempfile.TemporaryDirectory(prefix="bench-judge-")))
        prepared(args.raw, work, params, [args.size], config.workers(args.workers or None))
        return _judge_run(args, params, ecfg, gcfg, seed, work, name)


def _judge_run(args, params: dict, ecfg: EvaluateConfig, gcfg: GenerateConfig, seed: int, work: Path,
               name: str) -> dict:
    h, w = args.size
    images, _ = load_train_images(work / "data/variants" / name / "images", work / "data/split/split.csv", h, w)
    heldout = heldout_images(work, name, ecfg.heldout_splits)
    train01 = (images[:, 0].numpy() + 1.0) / 2.0
    n, ref_set = equal_sets(heldout, train01, 0, seed)
    cfg = recipe("ours", params, args.recipe_changes)
    snaps = train_budget(cfg, images, h, w, seed, args.budget_s, work / "models" / "judge", 1, args.points, "cpu")
    sets = {"real (train images)": ref_set}
    for k, s in enumerate(snaps):
        sets[f"snapshot {k + 1}: {s['seconds']:.0f} CPU-s, step {s['step']}"] = synthesise(s["generator"], gcfg, n)
    rng = np.random.default_rng(seed)
    unseen = train01[rng.choice(len(train01), n, replace=False)]
    sets.update(failure_sets(train01, unseen, seed))
    rows = judge(sets, heldout, ecfg, seed)
    payload = {"benchmark": "judge", "machine": machine(), "data": args.raw.name, "size": f"{h}x{w}",
               "train_images": len(train01), "heldout_images": len(heldout), "images_per_set": n,
               "recipe_changes": args.recipe_changes, "c2st": dict(vars(ecfg.c2st)), "rows": rows}
    table = markdown_table([{**r, "c2st_accuracy": f"{r['c2st_accuracy']:.3f} [{r['interval'][0]:.2f}-{r['interval'][1]:.2f}]",
                             "auc": f"{r['auc']:.3f}", "judge_cpu_s": f"{r['judge_cpu_s']:.0f}"} for r in rows],
                           ["set", "images_per_class", "c2st_accuracy", "auc", "epochs_median", "judge_cpu_s"])
    head = (f"## judge\n\nThe evaluate stage's C2ST (params.yaml `evaluate.c2st`: {dict(vars(ecfg.c2st))}) on "
            f"{args.raw.name} at {h}x{w}: {len(train01)} train, {len(heldout)} held-out images; every set holds "
            f"{n} images and is told from the held-out set. Snapshots: the recipe {args.recipe_changes} "
            f"trained {args.budget_s:.0f} CPU seconds (one thread). 95% interval: bootstrap over images. "
            "judge_cpu_s: the C2ST's own CPU time.\n\n")
    args.out.mkdir(parents=True, exist_ok=True)
    atomic.write_text(args.out / "judge.json", json.dumps(payload, indent=2, default=str) + "\n")
    atomic.write_text(args.out / "judge.md", head + table + "\n")
    print(table)
    return payload


if __name__ == "__main__":
    main()
