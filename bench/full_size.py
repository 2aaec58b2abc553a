"""Synthetic OPGs at full size: the GAN + super-resolution cascade against bicubic upscaling and
against WGAN-GP trained directly at full size, on real images, judged on full-resolution patches.

Per ``--size`` (the GAN's size) and ``--scale``:
1. The pipeline's stages up to ``split`` (as :mod:`bench.quality`), letterboxed at both sizes.
2. The base GAN (params.yaml ``train``) trains on the low-resolution train split for
   ``--gan-budget`` CPU-seconds; the SR stage (params.yaml ``train_sr``) on the full-size train
   split for ``--sr-budget``; the direct WGAN-GP (``train`` at full size) for their sum.
3. As many synthetic images as there are held-out ones, each method, scored against the held-out
   full-size images: patch C2ST and PRDC (:mod:`pipeline.metrics.patches`), SWD per pyramid level,
   and the consistency error (the output area-downscaled against its input). Train images against
   the held-out ones are the real-vs-real reference; the held-out low-resolution images through the
   SR stage (and through bicubic) show how believable the added detail is on real inputs.
4. The full-size failure modes (:func:`bench.failures.full_size_failures`) made from train
   images, scored the same way: each must rank below real.
5. Speed and peak memory of SR training and tiled inference at x4 and x8.

Runs write ``<out>/full_size/<data>-<size>.json``; ``--summarise`` merges them into
``<out>/full_size.{md,json}`` (aggregates only). Picture sheets of real OPGs go to the temp folder,
never into the repository.

    python -m bench.full_size --raw /path/opgs --size 72x128 --scale 4
    python -m bench.full_size --summarise
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from bench.common import machine, markdown_table
from bench.quality import heldout_images, parse_size, prepared, recipe, synthesise, train_budget, variant_for
from pipeline.core import atomic, config
from pipeline.gan.generate import GenerateConfig
from pipeline.gan.trainset import load_train_images
from pipeline.metrics.evaluate import EvaluateConfig
from bench.failures import full_size_failures
from pipeline.metrics.patches import PatchConfig, patch_metrics
from pipeline.metrics.swd import swd
from pipeline.sr.train import SRConfig, train_sr
from pipeline.sr.upscale import bicubic, consistency_mae, upscale

OUT = Path("reports/bench")


class PeakRSS:
    """Peak resident memory of this process while the block runs (sampled every 20 ms)."""

    def __enter__(self):
        import psutil
        self.proc, self.peak, self.stop = psutil.Process(), 0, False
        self.base = self.proc.memory_info().rss
        self.t = threading.Thread(target=self._poll, daemon=True)
        self.t.start()
        return self

    def _poll(self):
        while not self.stop:
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.02)

    def __exit__(self, *exc):
        self.stop = True
        self.t.join()
        self.mib = max(0, self.peak - self.base) / 2**20


def score(ref: np.ndarray, cand: np.ndarray, pcfg: PatchConfig, ecfg: EvaluateConfig, seed: int) -> dict:
    p = patch_metrics(ref, cand, pcfg, ecfg.c2st, ecfg.prdc, ecfg.intervals, seed)
    s = swd(ref, cand, ecfg.swd, seed)
    return {"patch_c2st_accuracy": p["c2st_accuracy"]["value"], "patch_c2st_interval": p["c2st_accuracy"]["interval"],
            **{f"patch_{k}": p[k]["value"] for k in ("precision", "recall", "density", "coverage")},
            "patch_coverage_interval": p["coverage"]["interval"], "patch_precision_interval": p["precision"]["interval"],
            "swd_levels": s["levels"], "swd_level_sizes": s["level_sizes"], "images": p["images"],
            "patches_per_class": p["patches_per_class"]}


def speed(scale: int, cfg: SRConfig, lr_hw: tuple[int, int], steps: int = 5) -> dict:
    """SR training patches/s and tiled inference images/s + peak memory at one scale (weights untrained:
    the cost does not depend on them)."""
    h, w = lr_hw
    imgs = torch.rand(4, 1, h * scale, w * scale) * 2 - 1
    tcfg = dataclasses.replace(cfg, steps=steps, patch=min(cfg.patch * scale // 4, h * scale), log_every=steps)
    with PeakRSS() as m_train:
        r = train_sr(tcfg, scale, imgs, 0, None, progress=False)
    gen = r["generator"]
    lr = np.random.default_rng(0).random((2, h, w))
    t0 = time.perf_counter()
    with PeakRSS() as m_inf:
        upscale(gen, lr, [0, 1], cfg.tile)
    return {"scale": scale, "in": f"{h}x{w}", "out": f"{h * scale}x{w * scale}",
            "train_patches_per_s": tcfg.batch * steps / r["wall_s"], "train_patch": tcfg.patch,
            "train_peak_mib": m_train.mib, "infer_images_per_s": 2 / (time.perf_counter() - t0),
            "infer_peak_mib": m_inf.mib, "tile": cfg.tile}


def sheet(blocks: dict[str, np.ndarray], path: Path, crop: int = 160, count: int = 3) -> None:
    """1:1 crops (centre of the lower teeth band) of each method, one column per method."""
    rows = []
    for k in range(count):
        row = []
        for name, imgs in blocks.items():
            im = imgs[k % len(imgs)]
            h, w = im.shape
            y, x = max(0, int(h * 0.55) - crop // 2), max(0, w // 2 - crop)
            row.append(np.pad(np.round(np.clip(im[y:y + crop, x:x + 2 * crop], 0, 1) * 255).astype(np.uint8), 3))
        rows.append(np.hstack(row))
    cv2.imwrite(str(path), np.vstack(rows))


def run(args) -> dict:
    params = config.load_params()
    ecfg = config.stage_config("evaluate", EvaluateConfig, params)
    gcfg = config.stage_config("generate", GenerateConfig, params)
    scfg = dataclasses.replace(config.stage_config("train_sr", SRConfig, params), overrides={}, steps=10**9,
                               checkpoint_every=10**9, cpu_threads=args.threads)
    pcfg = PatchConfig(size=args.patch, per_image=args.per_image)
    seed = config.seed(params)
    (h, w), s = args.size, args.scale
    lr_name, lr_v = variant_for(h, w)
    hr_name, hr_v = variant_for(h * s, w * s)
    work = args.work
    prepared(args.raw, work, params, [(h, w), (h * s, w * s)], 2)
    split_csv = work / "data" / "split" / "split.csv"
    train_lr, _ = load_train_images(work / "data" / "variants" / lr_name / "images", split_csv, h, w)
    train_hr, _ = load_train_images(work / "data" / "variants" / hr_name / "images", split_csv, h * s, w * s)
    held_lr = heldout_images(work, lr_name, ecfg.heldout_splits)
    held_hr = heldout_images(work, hr_name, ecfg.heldout_splits)
    n = len(held_hr)
    train_hr01 = (train_hr[:, 0].numpy() + 1) / 2
    ref_idx = np.sort(np.random.default_rng(seed).choice(len(train_hr01), min(n, len(train_hr01)), replace=False))
    log = lambda m: print(f"[{time.strftime('%H:%M:%S')}] {lr_name}: {m}", flush=True)
    log(f"{len(train_hr)} train, {n} held-out; GAN {args.gan_budget} + SR {args.sr_budget} CPU-s, direct {args.gan_budget + args.sr_budget}")
    torch.set_num_threads(args.threads)
    scratch = Path(tempfile.mkdtemp(prefix="bench-full-size-"))
    gan = train_budget(recipe("ours", params), train_lr, h, w, seed, args.gan_budget, scratch / "gan", args.threads, 1)[-1]
    gan_lr = synthesise(gan["generator"], gcfg, n)
    log(f"GAN: {gan['step']} steps")
    sr = train_sr(scfg, s, train_hr, seed, None, lr_name, budget_cpu_s=args.sr_budget, progress=False)
    log(f"SR: {sr['steps']} steps in {sr['cpu_s']:.0f} CPU-s")
    seeds = [gcfg.seed_base + i for i in range(n)]
    held_down = held_hr.reshape(n, h, s, w, s).mean(axis=(2, 4))
    out = {"cascade": upscale(sr["generator"], gan_lr, seeds, scfg.tile), "bicubic": bicubic(gan_lr, s)}
    consistency = {"cascade": consistency_mae(out["cascade"], gan_lr, s), "bicubic": consistency_mae(out["bicubic"], gan_lr, s)}
    real_sr = upscale(sr["generator"], held_down, seeds, scfg.tile)
    real_bic = bicubic(held_down, s)
    direct_budget = args.gan_budget + args.sr_budget
    if direct_budget > 0 and not args.no_direct:
        d = train_budget(recipe("ours", params), train_hr, h * s, w * s, seed, direct_budget, scratch / "direct", args.threads, 1)[-1]
        out["direct"] = synthesise(d["generator"], gcfg, n)
        consistency["direct"] = None
        log(f"direct: {d['step']} steps")
    rows = []
    ref = score(held_hr, train_hr01[ref_idx], pcfg, ecfg, seed)
    rows.append({"method": "real (train vs held-out)", **ref})
    for name, imgs in out.items():
        rows.append({"method": name, **score(held_hr, imgs, pcfg, ecfg, seed), "consistency_mae": consistency[name]})
        log(f"{name}: patch C2ST {rows[-1]['patch_c2st_accuracy']:.3f}")
    rows.append({"method": "SR of held-out low-res", **score(held_hr, real_sr, pcfg, ecfg, seed),
                 "consistency_mae": consistency_mae(real_sr, held_down, s)})
    rows.append({"method": "bicubic of held-out low-res", **score(held_hr, real_bic, pcfg, ecfg, seed),
                 "consistency_mae": consistency_mae(real_bic, held_down, s)})
    fails = full_size_failures(train_hr01[ref_idx], s, seed)
    failure_rows = [{"method": f"failure: {k}", **score(held_hr, v, pcfg, ecfg, seed)} for k, v in fails.items()]
    for r in rows + failure_rows:
        r["swd_ratio"] = [a / b for a, b in zip(r["swd_levels"], ref["swd_levels"])]
    speeds = [speed(k, scfg, (h, w)) for k in (4, 8)]
    tmp = Path(tempfile.gettempdir()) / f"full_size_{lr_name}_x{s}.png"
    sheet({"real": held_hr, **out, "SR(real low-res)": real_sr}, tmp)
    log(f"sheet (real patients: not for the repository): {tmp}")
    result = {"data": args.raw.name, "size": f"{h}x{w}", "out_size": f"{h * s}x{w * s}", "scale": s,
              "train_images": len(train_hr), "heldout_images": n, "gan_steps": gan["step"],
              "gan_budget_cpu_s": args.gan_budget, "sr_budget_cpu_s": args.sr_budget,
              "sr_steps": sr["steps"], "sr_cpu_s": sr["cpu_s"], "sr_config": {k: v for k, v in dataclasses.asdict(scfg).items() if k != "overrides"},
              "patch": dataclasses.asdict(pcfg), "rows": rows, "failures": failure_rows, "speed": speeds,
              "sr_history": sr["history"][-3:]}
    part = args.out / "full_size" / f"{args.raw.name}-{h}x{w}-x{s}.json"
    part.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(part, json.dumps(result, indent=1, default=float) + "\n")
    return result


def summarise(out: Path) -> str:
    parts = [json.loads(p.read_text()) for p in sorted((out / "full_size").glob("*.json"))]
    lines = ["# Full-size synthetic OPGs: cascade vs bicubic vs direct (bench.full_size)", ""]
    flat = []
    for p in parts:
        lines += [f"## {p['data']}: {p['size']} -> {p['out_size']} (x{p['scale']})", "",
                  f"{p['train_images']} train, {p['heldout_images']} held-out images; base GAN {p['gan_steps']} steps in "
                  f"{p['gan_budget_cpu_s']} CPU-s, SR {p['sr_steps']} steps in {p['sr_cpu_s']:.0f} CPU-s; "
                  f"patches {p['patch']['size']} px x {p['patch']['per_image']} per image; 95% intervals (bootstrap over images).", ""]
        table = []
        for r in p["rows"] + p["failures"]:
            iv = r["patch_c2st_interval"]
            row = {"method": r["method"], "patch C2ST": f"{r['patch_c2st_accuracy']:.3f} [{iv[0]:.2f}, {iv[1]:.2f}]",
                   "precision": r["patch_precision"], "coverage": r["patch_coverage"],
                   "SWD finest / ref": r["swd_ratio"][0], "SWD 2nd / ref": r["swd_ratio"][1],
                   "consistency MAE": "" if r.get("consistency_mae") is None else f"{r['consistency_mae']:.4f}"}
            table.append(row)
            flat.append({"data": p["data"], "size": p["out_size"], "method": r["method"],
                         "patch_c2st_accuracy": r["patch_c2st_accuracy"], "patch_c2st_interval": iv,
                         "swd_levels": r["swd_levels"], "swd_ratio": r["swd_ratio"], "consistency_mae": r.get("consistency_mae"),
                         "patch_precision": r["patch_precision"], "patch_coverage": r["patch_coverage"]})
        lines += [markdown_table(table, list(table[0])), "", "Speed (2 CPU cores shared; untrained weights):", "",
                  markdown_table(p["speed"], list(p["speed"][0])), ""]
    payload = {"benchmark": "full_size", "machine": machine(), "results": flat, "runs": parts}
    atomic.write_text(out / "full_size.json", json.dumps(payload, indent=1, default=float) + "\n")
    atomic.write_text(out / "full_size.md", "\n".join(lines) + "\n")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--raw", type=Path, help="folder of real OPGs")
    ap.add_argument("--work", type=Path, help="scratch folder for the prepared stages (reused)")
    ap.add_argument("--size", type=parse_size, default=(72, 128))
    ap.add_argument("--scale", type=int, default=4)
    ap.add_argument("--gan-budget", type=float, default=600)
    ap.add_argument("--sr-budget", type=float, default=1500)
    ap.add_argument("--no-direct", action="store_true")
    ap.add_argument("--patch", type=int, default=64)
    ap.add_argument("--per-image", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--summarise", action="store_true")
    args = ap.parse_args(argv)
    if args.summarise:
        print(summarise(args.out))
        return
    if args.raw is None:
        ap.error("--raw is required (or --summarise)")
    if args.work is None:
        args.work = Path(tempfile.mkdtemp(prefix="bench-full-size-work-"))
    run(args)


if __name__ == "__main__":
    main()
