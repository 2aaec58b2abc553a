"""Training quality, side by side: our recipe (params.yaml ``train``) against the earlier attempt's
(:meth:`TrainConfig.baseline_recipe`) on the same data, for the same wall-clock budget.

1. The pipeline's own stages up to ``split`` (ingest, audit, crop, letterbox, split: the library
   functions the stage scripts call, with params.yaml's settings) run on ``--raw DIR`` in a scratch
   folder, one letterbox variant per ``--size`` (16:9 sizes: the whole image; squares: the teeth crop).
2. Both recipes train on the train split through the real training loop
   (:func:`pipeline.gan.train.train`) until ``--budget-s`` seconds of training have passed
   (evaluation pauses the clock); the EMA generator (ours) or the live one (baseline: no EMA) is
   snapshotted ``--curve-points`` times (default: at 1/3, 2/3 and all of the budget).
3. Each snapshot draws ``generate.n`` images with the generate stage's seeds (image i: seed
   ``generate.seed_base + i``, the same latents for both recipes as far as their z sizes allow) and
   is scored with the evaluate stage's metrics (:func:`pipeline.metrics.evaluate.quality_metrics`)
   against the held-out split (val + test); train vs held-out is the real-vs-real reference.
4. Repeated over ``--seeds`` training seeds (the data, split and evaluation stay fixed): the
   spread over seeds is reported next to the median.

Writes ``<out>/quality.{json,md}``; ``quality_curves.png`` (SWD and C2ST accuracy against training
time, aggregates only) and the side-by-side picture (held-out real | ours | baseline, same seeds):
``<out>/quality.png`` only for the generated demo archive (a folder with the phantoms'
``ground_truth.csv``), else in the system temp folder, since for a real archive it shows patients.

    python -m bench.quality --raw data/demo_raw                     # CPU: 36x64 and 32x32, 3 seeds
    python -m bench.quality --raw /path/opgs --raw data/demo_raw    # both into one report
    python -m bench.quality --raw DIR --size 144x256,256x256 --budget-s 600 --threads 0   # GPU
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import json
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from bench.common import machine, markdown_table
from pipeline.audit.audit import AuditConfig
from pipeline.audit.run import run_audit
from pipeline.core import atomic, config, pngio
from pipeline.crop.crop import CropConfig, run_crop
from pipeline.gan.generate import GenerateConfig, render
from pipeline.gan.train import TrainConfig, train
from pipeline.gan.trainset import load_train_images
from pipeline.ingest.ingest import IngestConfig, run_ingest
from pipeline.metrics.evaluate import EvaluateConfig, quality_metrics
from pipeline.variants.letterbox import LetterboxConfig, run_letterbox
from pipeline.variants.split import SplitConfig, read_split, run_split

REPO = Path(__file__).resolve().parents[1]
METRIC_KEYS = ("swd", "c2st_accuracy", "c2st_auc", "precision", "recall", "density", "coverage", "ms_ssim_gap",
               "histogram_js")


def parse_size(text: str) -> tuple[int, int]:
    h, w = (int(v) for v in text.lower().split("x"))
    if h < 8 or w < 8:
        raise argparse.ArgumentTypeError(f"size {text}: at least 8x8")
    return h, w


def variant_for(h: int, w: int) -> tuple[str, config.Variant]:
    """16:9 sizes train on the whole (letterboxed) image, squares on the teeth crop."""
    if h == w:
        return f"teeth_{h}x{w}", config.Variant("teeth", "square", "letterbox", h, w)
    if abs(w / h - 16 / 9) > 0.05:
        raise ValueError(f"size {h}x{w}: neither square nor 16:9")
    return f"full_{h}x{w}", config.Variant("full", "16:9", "letterbox", h, w)


# ------------------------------------------------------------------------------------------- data
def prepare(raw: Path, work: Path, params: dict, sizes: list[tuple[int, int]], workers: int) -> dict[str, config.Variant]:
    """The pipeline's stages up to ``split`` on ``raw`` into ``work`` (the stage scripts' calls)."""
    data = work / "data"
    ing = config.build(IngestConfig, {**params["ingest"], "raw_dir": str(raw.resolve())}, "ingest")
    run_ingest(ing, data / "ingested", workers=workers, progress=False)
    run_audit(config.stage_config("audit", AuditConfig, params), data / "ingested", data / "audit", None,
              workers=workers, progress=False)
    run_crop(config.stage_config("crop", CropConfig, params), data / "audit", data / "ingested" / "manifest.csv",
             data / "crops", work / "reports" / "crops.html", workers=workers, progress=False)
    lcfg = config.stage_config("letterbox", LetterboxConfig, params)
    variants = dict(variant_for(h, w) for h, w in sizes)
    for name, v in variants.items():
        run_letterbox(name, v, lcfg, data / "audit", data / "crops", data / "variants", workers=workers,
                      progress=False)
    run_split(config.stage_config("split", SplitConfig, params), config.seed(params), data / "audit" / "kept.csv",
              data / "split")
    return variants


def prepared(raw: Path, work: Path, params: dict, sizes: list[tuple[int, int]],
             workers: int) -> tuple[dict[str, config.Variant], bool]:
    """(variants, reused): :func:`prepare`'s outputs in ``work``, reused when a split and every
    size's variant images are already there."""
    wanted = dict(variant_for(h, w) for h, w in sizes)
    if (work / "data" / "split" / "split.csv").is_file() and all(
            (work / "data" / "variants" / n / "images").is_dir() for n in wanted):
        return wanted, True
    return prepare(raw, work, params, sizes, workers), False


def heldout_images(work: Path, name: str, splits: list[str]) -> np.ndarray:
    split = read_split(work / "data" / "split" / "split.csv")
    folder = work / "data" / "variants" / name / "images"
    ids = sorted(i for s in splits for i in split.get(s, []) if (folder / f"{i}.png").is_file())
    if len(ids) < 6:
        raise ValueError(f"{name}: only {len(ids)} held-out images; the metrics need at least 6")
    return np.stack([pngio.read_float01(folder / f"{i}.png") for i in ids])


# --------------------------------------------------------------------------------------- training
def recipe(name: str, params: dict, changes: dict | None = None) -> TrainConfig:
    """The recipe as params.yaml (ours) or the earlier attempt (baseline) states it, with an endless
    step count (the budget ends the run), no checkpoints or sample grids (they cost time) and
    ``changes`` (ablations, tests) on top."""
    quiet = dict(steps=10**9, log_every=50, sample_every=10**9, checkpoint_every=10**9, keep_checkpoints=1,
                 device="cpu" if not torch.cuda.is_available() else "auto")
    if name == "baseline":
        return TrainConfig.baseline_recipe(**{**quiet, **(changes or {})})
    ours = config.stage_config("train", TrainConfig, params)
    return dataclasses.replace(ours, overrides={}, **{**quiet, **(changes or {})})


def train_budget(cfg: TrainConfig, images: torch.Tensor, h: int, w: int, seed: int, budget_s: float,
                 scratch: Path, threads: int | None, points: int = 3, clock_kind: str = "cpu") -> list[dict]:
    """Train for ``budget_s`` seconds of training; snapshots (step, seconds, generator copy) after
    1/points, 2/points, .. of the budget. ``clock_kind`` cpu: this process's CPU seconds (on a
    shared machine the same compute for both recipes, whatever the other processes do; with one
    torch thread, what the wall clock reads on an idle core); wall: elapsed seconds (a GPU)."""
    now = time.process_time if clock_kind == "cpu" else time.perf_counter
    snaps: list[dict] = []
    marks = [budget_s * (k + 1) / points for k in range(points)]
    clock = {"elapsed": 0.0, "since": now()}

    def on_step(step: int, generator: torch.nn.Module) -> bool:
        clock["elapsed"] += now() - clock["since"]
        while marks and clock["elapsed"] >= marks[0]:
            marks.pop(0)
            snaps.append({"step": step, "seconds": clock["elapsed"], "generator": copy.deepcopy(generator).cpu()})
        clock["since"] = now()   # the snapshot copy is not training time
        return not marks

    train(cfg, "bench", h, w, seed, "", "", scratch, images=images, progress=False, threads=threads,
          on_step=on_step)
    return snaps


def synthesise(generator: torch.nn.Module, gcfg: GenerateConfig, n: int) -> np.ndarray:
    seeds = [gcfg.seed_base + i for i in range(n)]
    return render(generator, seeds, gcfg.batch, torch.device("cpu")).astype(np.float32) / 65535.0


def scores(metrics: dict) -> dict:
    """{metric: value, metric_interval: [lo, hi] (95%, bootstrap over images) where there is one}."""
    out = {k: float(metrics[k]["value"]) for k in METRIC_KEYS if k in metrics}
    out.update({f"{k}_interval": metrics[k]["interval"] for k in METRIC_KEYS if "interval" in metrics.get(k, {})})
    return out


def equal_sets(heldout: np.ndarray, train01: np.ndarray, images: int, seed: int) -> tuple[int, np.ndarray]:
    """(synthetic images per snapshot, the real reference set of that size): k-NN coverage and recall
    grow with the set size, so the synthetic set and the real one it is measured against (train
    images, the reference) hold as many images; by default as many as the held-out set."""
    n = images or len(heldout)
    m = min(n, len(train01))
    idx = np.sort(np.random.default_rng(seed).choice(len(train01), m, replace=False))
    return n, train01[idx]


# ---------------------------------------------------------------------------------------- figures
def _u8(img: np.ndarray) -> np.ndarray:
    return np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)


def side_by_side(blocks: list[dict], rows: int = 6, scale: int = 3) -> np.ndarray:
    """One panel per (data, size): columns held-out real | ours | baseline, ``rows`` images each."""
    panels = []
    for b in blocks:
        cols = []
        for title in [t for t in ("real", "ours", "baseline") if t in b]:
            imgs = b[title][:rows]
            h, w = imgs.shape[1:]
            tile = np.full((rows * (h + 2), w), 255, np.uint8)
            for i, img in enumerate(imgs):
                tile[i * (h + 2): i * (h + 2) + h] = _u8(img)
            tile = cv2.resize(tile, (w * scale, tile.shape[0] * scale), interpolation=cv2.INTER_NEAREST)
            head = np.full((22, tile.shape[1]), 255, np.uint8)
            cv2.putText(head, title, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, 0, 1, cv2.LINE_AA)
            cols += [np.vstack([head, tile]), np.full((22 + tile.shape[0], 6), 255, np.uint8)]
        panel = np.hstack(cols)
        label = np.full((24, panel.shape[1]), 255, np.uint8)
        cv2.putText(label, f"{b['data']} {b['size']} (training seed {b['seed']})", (4, 17),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.5, 0, 1, cv2.LINE_AA)
        panels.append(np.vstack([label, panel]))
    height = max(p.shape[0] for p in panels)
    panels = [np.vstack([p, np.full((height - p.shape[0], p.shape[1]), 255, np.uint8)]) for p in panels]
    return np.hstack([np.hstack([p, np.full((height, 16), 255, np.uint8)]) for p in panels])


def _points(runs: list[dict]) -> int:
    return max(len(r["curve"]) for r in runs)


def curves_png(runs: list[dict], groups: list[tuple[str, str]]) -> np.ndarray:
    """SWD / reference and C2ST accuracy against training seconds (median over seeds), per group."""
    W, H, pad = 360, 200, 36
    colours = {"ours": (220, 120, 40), "baseline": (60, 60, 60)}   # BGR: blue, grey
    panels = []
    for data, size in groups:
        row = []
        for metric, ylabel in (("swd_ratio", "SWD / real-vs-real"), ("c2st_accuracy", "C2ST accuracy")):
            canvas = np.full((H + 2 * pad, W + 2 * pad, 3), 255, np.uint8)
            series = {}
            for rec in ("ours", "baseline"):
                rs = [r for r in runs if (r["data"], r["size"], r["recipe"]) == (data, size, rec)]
                if not rs:
                    continue
                pts = []
                for k in range(_points(rs)):
                    ts = [r["curve"][k]["seconds"] for r in rs if len(r["curve"]) > k]
                    vs = [r["curve"][k][metric] for r in rs if len(r["curve"]) > k]
                    if ts:
                        pts.append((statistics.median(ts), statistics.median(vs)))
                series[rec] = pts
            allp = [p for pts in series.values() for p in pts]
            if not allp:
                continue
            tmax = max(p[0] for p in allp) or 1.0
            lo = 0.5 if metric == "c2st_accuracy" else 0.0
            hi = 1.0 if metric == "c2st_accuracy" else max(p[1] for p in allp) * 1.1
            cv2.rectangle(canvas, (pad, pad), (pad + W, pad + H), (0, 0, 0), 1)
            for rec, pts in series.items():
                xy = [(int(pad + W * t / tmax), int(pad + H - H * (v - lo) / max(hi - lo, 1e-9))) for t, v in pts]
                for a, b in zip(xy, xy[1:]):
                    cv2.line(canvas, a, b, colours[rec], 2, cv2.LINE_AA)
                for p in xy:
                    cv2.circle(canvas, p, 3, colours[rec], -1)
            cv2.putText(canvas, f"{data} {size}: {ylabel}", (pad, pad - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.42,
                        (0, 0, 0), 1, cv2.LINE_AA)
            cv2.putText(canvas, f"{hi:.3g}", (2, pad + 5), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1)
            cv2.putText(canvas, f"{lo:.3g}", (2, pad + H), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 0), 1)
            cv2.putText(canvas, f"training s (0..{tmax:.0f}); blue ours, grey baseline", (pad, pad + H + 20),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
            row.append(canvas)
        if row:
            panels.append(np.hstack(row))
    width = max(p.shape[1] for p in panels)
    return np.vstack([np.hstack([p, np.full((p.shape[0], width - p.shape[1], 3), 255, np.uint8)]) for p in panels])


# ---------------------------------------------------------------------------------------- summary
def _spread(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3g}"
    return f"{statistics.median(values):.3g} [{min(values):.3g}-{max(values):.3g}]"


def _ci(run: dict, key: str) -> str:
    if key not in run:
        return ""
    iv = run.get(f"{key}_interval")
    return f"{run[key]:.3g} [{iv[0]:.3g}-{iv[1]:.3g}]" if iv else f"{run[key]:.3g}"


_INTERVAL_COLS = ["data", "size", "recipe", "seed", "steps", "train/held-out/synthetic", "swd",
                  "swd real-vs-real", "c2st_accuracy", "c2st real-vs-real", "precision", "coverage",
                  "coverage real-vs-real"]


def _interval_row(r: dict) -> dict:
    return {"data": r["data"], "size": r["size"], "recipe": r["recipe"], "seed": r["seed"], "steps": r["steps"],
            "train/held-out/synthetic": f"{r['train_images']}/{r['heldout_images']}/{r['synthetic_images']}",
            "swd": _ci(r, "swd"), "swd real-vs-real": _ci(r, "swd_reference"),
            "c2st_accuracy": _ci(r, "c2st_accuracy"), "c2st real-vs-real": _ci(r, "c2st_accuracy_reference"),
            "precision": _ci(r, "precision"), "coverage": _ci(r, "coverage"),
            "coverage real-vs-real": _ci(r, "coverage_reference")}


def summarise(runs: list[dict]) -> tuple[str, list[dict]]:
    groups = sorted({(r["data"], r["size"]) for r in runs})
    rows, verdicts = [], []
    for data, size in groups:
        by = {rec: [r for r in runs if (r["data"], r["size"], r["recipe"]) == (data, size, rec)]
              for rec in ("ours", "baseline")}
        for rec, rs in by.items():
            if not rs:
                continue
            rows.append({"data": data, "size": size, "recipe": rec, "seeds": len(rs),
                         "steps": _spread([r["steps"] for r in rs]),
                         "swd": _spread([r["swd"] for r in rs]), "swd_reference": f"{rs[0]['swd_reference']:.3g}",
                         "c2st_accuracy": _spread([r["c2st_accuracy"] for r in rs]),
                         "precision": _spread([r["precision"] for r in rs]),
                         "coverage": _spread([r["coverage"] for r in rs]),
                         "recall": _spread([r["recall"] for r in rs]), "density": _spread([r["density"] for r in rs])})
        pairs = [(o, b) for o in by["ours"] for b in by["baseline"] if o["seed"] == b["seed"]]
        if pairs:
            ratio = [o["swd"] / b["swd"] for o, b in pairs]
            c2st_wins = sum(o["c2st_accuracy"] < b["c2st_accuracy"] for o, b in pairs)
            med_o = statistics.median(o["c2st_accuracy"] for o, _ in pairs)
            med_b = statistics.median(b["c2st_accuracy"] for _, b in pairs)
            verdicts.append({"data": data, "size": size, "seeds": len(pairs),
                             "swd_ours_over_baseline": _spread(ratio),
                             "swd_target_met": max(ratio) <= 0.5,
                             "c2st_ours_lower": f"{c2st_wins}/{len(pairs)} seeds (median {med_o:.3g} vs {med_b:.3g})",
                             "c2st_target_met": c2st_wins == len(pairs)})
    cols = ["data", "size", "recipe", "seeds", "steps", "swd", "swd_reference", "c2st_accuracy", "precision",
            "coverage", "recall", "density"]
    text = markdown_table(rows, cols)
    text += ("\n\n### Every run with its 95% interval (bootstrap over images) and the set sizes\n\n"
             "Real-vs-real: the reference set (train images, as many as the synthetic set) against the held-out "
             "set, scored by the same code.\n\n")
    text += markdown_table([_interval_row(r) for r in runs], _INTERVAL_COLS)
    if verdicts:
        text += "\n\n" + markdown_table(verdicts, ["data", "size", "seeds", "swd_ours_over_baseline", "swd_target_met",
                                                   "c2st_ours_lower", "c2st_target_met"])
    curve_rows = []
    for data, size in groups:
        for rec in ("ours", "baseline"):
            rs = [r for r in runs if (r["data"], r["size"], r["recipe"]) == (data, size, rec)]
            for k in range(_points(rs) if rs else 0):
                pts = [r["curve"][k] for r in rs if len(r["curve"]) > k]
                if pts:
                    curve_rows.append({"data": data, "size": size, "recipe": rec,
                                       "seconds": statistics.median(p["seconds"] for p in pts),
                                       "steps": statistics.median(p["step"] for p in pts),
                                       "swd": _spread([p["swd"] for p in pts]),
                                       "c2st_accuracy": _spread([p["c2st_accuracy"] for p in pts])})
    text += "\n\n### SWD and C2ST accuracy against training time (median [min-max] over seeds)\n\n"
    text += markdown_table(curve_rows, ["data", "size", "recipe", "seconds", "steps", "swd", "c2st_accuracy"])
    return text, verdicts


# ------------------------------------------------------------------------------------------- main
def run_folder(raw: Path, args, params: dict, blocks: list[dict], log) -> list[dict]:
    ecfg = config.stage_config("evaluate", EvaluateConfig, params)
    gcfg = config.stage_config("generate", GenerateConfig, params)
    seed = config.seed(params)
    runs = []
    with contextlib.ExitStack() as stack:
        work = args.work / raw.name if args.work else Path(stack.enter_context(
            tempfile.TemporaryDirectory(prefix="bench-quality-")))
        t0 = time.perf_counter()
        variants, reused = prepared(raw, work, params, args.size, args.workers)
        log(f"{raw.name}: stages up to split reused from {work}" if reused
            else f"{raw.name}: stages up to split in {time.perf_counter() - t0:.0f} s")
        for name, v in variants.items():
            images, _ = load_train_images(work / "data" / "variants" / name / "images",
                                          work / "data" / "split" / "split.csv", v.height, v.width)
            heldout = heldout_images(work, name, ecfg.heldout_splits)
            train01 = (images[:, 0].numpy() + 1.0) / 2.0
            n_syn, ref_set = equal_sets(heldout, train01, args.images, seed)
            ref = scores(quality_metrics(heldout, ref_set, ecfg, seed))
            log(f"{raw.name} {name}: {len(train01)} train, {len(heldout)} held-out, {n_syn} synthetic per "
                f"snapshot, reference: {len(ref_set)} train images; real-vs-real SWD {ref['swd']:.3g}, "
                f"C2ST {ref['c2st_accuracy']:.3g}, coverage {ref['coverage']:.2f}")
            size = f"{v.height}x{v.width}"
            for k in range(args.first_seed, args.first_seed + args.seeds):
                train_seed = seed + k
                finals = {}
                for rec in args.recipes:   # interleaved: both see the same machine load
                    cfg = recipe(rec, params, args.ours if rec == "ours" else args.baseline)
                    snaps = train_budget(cfg, images, v.height, v.width, train_seed, args.budget_s,
                                         work / "models" / f"{name}-{rec}-{k}", args.threads, args.curve_points, args.clock)
                    curve = []
                    for s in snaps:
                        syn = synthesise(s.pop("generator"), gcfg, n_syn)
                        m = scores(quality_metrics(heldout, syn, ecfg, seed))
                        curve.append({"seconds": s["seconds"], "step": s["step"], **m,
                                      "swd_ratio": m["swd"] / ref["swd"]})
                    last = curve[-1]
                    finals[rec] = syn
                    row = {"data": raw.name, "size": size, "recipe": rec, "seed": train_seed,
                           "budget_s": args.budget_s, "train_s": last["seconds"], "steps": last["step"],
                           "batch": cfg.batch, "n_critic": cfg.n_critic,
                           **{k2: last[k2] for k2 in METRIC_KEYS if k2 in last},
                           **{k2: last[k2] for k2 in last if k2.endswith("_interval")},
                           **{f"{k2}_reference": ref[k2] for k2 in METRIC_KEYS if k2 in ref},
                           **{f"{k2}_reference_interval": ref[f"{k2}_interval"] for k2 in METRIC_KEYS
                              if f"{k2}_interval" in ref},
                           "reference_images": len(ref_set),
                           "train_images": int(images.shape[0]), "heldout_images": int(len(heldout)),
                           "synthetic_images": n_syn, "curve": curve}
                    runs.append(row)
                    log(f"{raw.name} {size} {rec} seed {train_seed}: {row['steps']} steps in {row['train_s']:.0f} s, "
                        f"SWD {row['swd']:.3g} (ref {ref['swd']:.3g}), C2ST {row['c2st_accuracy']:.3g}, "
                        f"precision {row['precision']:.2f}, coverage {row['coverage']:.2f}")
                if k == args.first_seed:
                    blocks.append({"data": raw.name, "size": size, "seed": train_seed, "real": heldout,
                                   **finals,
                                   "public": (raw / "ground_truth.csv").is_file()})
    return runs


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--raw", type=Path, action="append", default=[], help="a folder of OPGs (repeatable)")
    ap.add_argument("--merge", type=Path, action="append", default=[],
                    help="also report the runs of an earlier quality.json (e.g. two folders benchmarked in parallel)")
    ap.add_argument("--size", type=lambda s: [parse_size(p) for p in s.split(",")], default=[(36, 64), (32, 32)],
                    help="HxW[,HxW]: 16:9 sizes train on whole images, squares on the teeth crop (default 36x64,32x32)")
    ap.add_argument("--budget-s", type=float, default=60.0, help="training seconds per recipe and seed (default 60)")
    ap.add_argument("--seeds", type=int, default=3, help="training seeds (default 3)")
    ap.add_argument("--first-seed", type=int, default=0,
                    help="the first training seed's offset from params.yaml seed (default 0): runs split over "
                         "processes (merged with --merge) each take their own seeds")
    ap.add_argument("--clock", choices=["cpu", "wall"], default=None,
                    help="what the budget counts: cpu = this process's CPU seconds (default on the CPU: a "
                         "shared machine's load cannot shorten one recipe's run), wall = elapsed (default on CUDA)")
    ap.add_argument("--curve-points", type=int, default=3,
                    help="snapshots per run, evenly over the budget, for the curves (default 3; the last is the result)")
    ap.add_argument("--images", type=int, default=0,
                    help="synthetic images per snapshot, and real images in the reference set (default: as "
                         "many as the held-out set: equal sets)")
    ap.add_argument("--recipes", type=lambda t: [r for r in t.split(",") if r], default=["ours", "baseline"],
                    help="ours,baseline (default) or one of them")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads for training (default 1: on a shared CPU one thread is fastest; 0: all)")
    ap.add_argument("--workers", type=int, default=0, help="processes for the preprocessing stages (0: all cores)")
    ap.add_argument("--ours", type=json.loads, default={}, metavar="JSON",
                    help="changes to our recipe (params.yaml train), e.g. '{\"batch\": 16}' (ablations)")
    ap.add_argument("--baseline", type=json.loads, default={}, metavar="JSON",
                    help="changes to the baseline recipe (default none: as the earlier attempt ran it)")
    ap.add_argument("--work", type=Path, default=None,
                    help="keep the stages' outputs in WORK/<folder name> and reuse them on the next run "
                         "(default: a temp folder, removed)")
    ap.add_argument("--params", type=Path, default=REPO / "params.yaml")
    ap.add_argument("--out", type=Path, default=REPO / "reports" / "bench")
    ap.add_argument("--keep", action="store_true", help="keep the runs of other data folders already in quality.json")
    args = ap.parse_args(argv)
    if not args.raw and not args.merge:
        ap.error("give --raw DIR (or --merge quality.json)")
    if not args.recipes or set(args.recipes) - {"ours", "baseline"}:
        ap.error(f"--recipes: ours and/or baseline, got {args.recipes}")
    params = config.load_params(args.params)
    torch.set_num_threads(args.threads or torch.get_num_threads())
    args.workers = config.workers(args.workers or None)
    args.clock = args.clock or ("wall" if torch.cuda.is_available() else "cpu")
    t_start = time.time()

    def log(msg: str) -> None:
        print(f"[bench.quality {time.time() - t_start:6.0f} s] {msg}", flush=True)

    runs, blocks = [], []
    for raw in args.raw:
        if not raw.is_dir():
            raise SystemExit(f"--raw {raw}: not a folder")
        runs += run_folder(raw, args, params, blocks, log)
    for path in args.merge:
        runs += json.loads(path.read_text())["runs"]
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    if args.keep and (out / "quality.json").is_file():
        names = {r["data"] for r in runs}
        runs = [r for r in json.loads((out / "quality.json").read_text())["runs"] if r["data"] not in names] + runs
    table, verdicts = summarise(runs)
    payload = {"benchmark": "quality", "machine": machine(), "threads": args.threads, "clock": args.clock,
               "ours_changes": args.ours, "baseline_changes": args.baseline,
               "curve_points": args.curve_points, "verdicts": verdicts,
               "note": "same wall-clock training budget per recipe and seed (evaluation excluded); metrics of "
                       "pipeline.metrics.evaluate against the held-out split (val+test); reference = train vs held-out",
               "runs": runs}
    atomic.write_text(out / "quality.json", json.dumps(payload, indent=2) + "\n")
    public = [b for b in blocks if b["public"]]
    private = [b for b in blocks if not b["public"]]
    pictures = []
    if public:
        pngio.write_png8(out / "quality.png", side_by_side(public))
    if public or (out / "quality.png").is_file() and args.merge:
        pictures.append("![held-out real | ours | baseline, same seeds](quality.png)")
    if private:   # real patients: never into the repository
        path = Path(tempfile.gettempdir()) / "bench-quality-private.png"
        pngio.write_png8(path, side_by_side(private))
        log(f"side by side of real images (not for the repository): {path}")
    groups = sorted({(r["data"], r["size"]) for r in runs})
    ok, buf = cv2.imencode(".png", curves_png(runs, groups))
    if ok:
        with atomic.open_file(out / "quality_curves.png", "wb") as f:
            f.write(buf.tobytes())
        pictures.append("![SWD and C2ST against training time](quality_curves.png)")
    recipes = sorted({r["recipe"] for r in runs})
    head = (f"## quality\n\nSame training budget ({args.clock} seconds) for {' and '.join(recipes)} "
            f"({'/'.join(f'{b:g}' for b in sorted({r['budget_s'] for r in runs}))} s per run, "
            f"{args.threads or 'all'} torch thread(s), evaluation excluded), same train split, same held-out split "
            f"(val+test) and evaluation seed; as many synthetic images per run as held-out ones unless "
            f"--images said otherwise (here {'/'.join(str(v) for v in sorted({r['synthetic_images'] for r in runs}))}); "
            + (f"the earlier recipe as it ran (changes: {args.baseline or 'none'}); " if "baseline" in recipes else "")
            + f"ours as params.yaml states it (changes: {args.ours or 'none'}). Median [min-max] over training seeds."
            + (" Targets: ours SWD <= 0.5x the baseline's (every seed) and a lower C2ST accuracy (every seed)."
               if "baseline" in recipes else "") + "\n\n")
    atomic.write_text(out / "quality.md", head + table + "\n\n" + "\n\n".join(pictures) + "\n")
    print(table)
    return payload


if __name__ == "__main__":
    main()
