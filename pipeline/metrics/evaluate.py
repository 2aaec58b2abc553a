"""Evaluate synthetic images against held-out real ones, with train-vs-held-out as the reference.

For every variant, each metric is computed twice with the same code and seeds:
  * value: held-out real (never trained on) vs the synthetic images;
  * reference: held-out real vs the training images (two real samples: what a perfect generator,
    one that draws new real radiographs, would score; the floor no synthetic set should beat by
    much).
``reports/metrics.json``: ``{variant: {metric: {value, reference, better: lower|higher, kind, ...},
"images": {...}}}`` (``kind``: ``quality`` or ``privacy``). FID/KID read ``NOT_COMPUTED`` unless
``inception_weights`` names a local file. The memorisation check writes ``data/eval/nearest.csv``
(one row per synthetic image) and ``data/eval/heldout_nearest.csv`` (the real distances that set
its threshold).
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.core import atomic, config, pngio, workpool
from pipeline.metrics.c2st import C2STConfig, c2st
from pipeline.metrics.embedding import embed, standardise
from pipeline.metrics.diversity import DiversityConfig, diversity, mean_pairwise_ms_ssim
from pipeline.metrics.fid import FIDConfig, features, fid_kid, load_inception, weights_available
from pipeline.core.layout import Layout
from pipeline.core.tables import read_seeds, write_csv
from pipeline.metrics.histogram import HistogramConfig, histogram_distance
from pipeline.metrics.intervals import IntervalConfig, mean_interval, resample_interval
from pipeline.metrics.memorisation import MemorisationConfig, descriptor, nearest, threshold
from pipeline.metrics.metric_table import METRICS
from pipeline.metrics.prdc import PRDCConfig, prdc_items
from pipeline.variants.split import read_split
from pipeline.metrics.swd import SWDConfig, swd
from pipeline.metrics.patches import PatchConfig, patch_metrics

NEAREST_COLUMNS = ["variant", "file", "nearest_train_id", "distance", "threshold", "flagged"]


@dataclass(frozen=True)
class EvaluateConfig:
    heldout_splits: list[str] = field(default_factory=lambda: ["val", "test"])  # real images never trained on
    max_images: int = config.param(1000, ge=0)     # per set for the distribution metrics (seeded subsample; 0 = all)
    inception_weights: str = ""     # local torchvision inception_v3 state dict; empty: no FID/KID
    swd: SWDConfig = field(default_factory=SWDConfig)
    c2st: C2STConfig = field(default_factory=C2STConfig)
    diversity: DiversityConfig = field(default_factory=DiversityConfig)
    histogram: HistogramConfig = field(default_factory=HistogramConfig)
    prdc: PRDCConfig = field(default_factory=PRDCConfig)
    memorisation: MemorisationConfig = field(default_factory=MemorisationConfig)
    fid: FIDConfig = field(default_factory=FIDConfig)
    intervals: IntervalConfig = field(default_factory=IntervalConfig)
    patches: PatchConfig = field(default_factory=PatchConfig)   # full-size (super-resolved) variants

    def __post_init__(self) -> None:
        bad = set(self.heldout_splits) - {"val", "test"}
        if bad or not self.heldout_splits:
            raise config.ConfigError(f"evaluate.heldout_splits must be val and/or test, got {self.heldout_splits}")


# ------------------------------------------------------------------------------ metric computation
def quality_metrics(heldout: np.ndarray, candidate: np.ndarray, cfg: EvaluateConfig, seed: int,
                    inception=None, cache: dict | None = None, only: set[str] | None = None) -> dict:
    """Every weight-free quality metric (and FID/KID) of ``candidate`` against ``heldout`` (both
    (n, H, W) in [0, 1]). ``cache`` keeps held-out-only quantities between calls; ``only`` (metric
    names) computes just the metrics needed for those (e.g. the report's headline)."""
    cache = {} if cache is None else cache
    want = (lambda *names: True) if only is None else (lambda *names: bool(set(names) & set(only)))
    out: dict = {}
    icfg = cfg.intervals
    if want("swd"):
        s = swd(heldout, candidate, cfg.swd, seed)
        out["swd"] = {"value": s["mean"], "levels": s["levels"], "level_sizes": s["level_sizes"]}
        if icfg.swd_resamples:
            quick = dataclasses.replace(cfg.swd, repeats=1)
            out["swd"]["interval"] = resample_interval(lambda a, b: swd(a, b, quick, seed)["mean"], heldout,
                                                       candidate, s["mean"], icfg.swd_resamples, icfg.level,
                                                       seed + 5)
    if want("c2st_accuracy", "c2st_auc"):
        c = c2st(heldout, candidate, cfg.c2st, seed + 1)
        out["c2st_accuracy"] = {"value": c["accuracy"], "chance_band": c["chance_band"],
                                "images_per_class": c["images_per_class"],
                                "interval": mean_interval(c["correct"], icfg, seed + 6)}
        out["c2st_auc"] = {"value": c["auc"]}
    if want("ms_ssim_gap"):
        if "ms_ssim" not in cache:
            cache["ms_ssim"] = mean_pairwise_ms_ssim(heldout, cfg.diversity, seed + 2)
        d = diversity(heldout, candidate, cfg.diversity, seed + 2, reference_value=cache["ms_ssim"])
        out["ms_ssim_gap"] = {"value": d["abs_gap"], "ms_ssim": d["ms_ssim"], "ms_ssim_real": d["ms_ssim_real"]}
    if want("histogram_js", "histogram_emd_percent"):
        h = histogram_distance(heldout, candidate, cfg.histogram)
        out["histogram_js"] = {"value": h["jensen_shannon"]}
        out["histogram_emd_percent"] = {"value": h["emd_percent"]}
    if want("precision", "recall", "density", "coverage"):
        out.update(_prdc(heldout, candidate, cfg, seed, cache))
    if want("fid", "kid_x1e3"):
        if inception is not None and "inception" not in cache:
            cache["inception"] = features(inception, heldout, cfg.fid.batch)
        for k, v in fid_kid(inception, heldout, candidate, cfg.fid, seed + 4, cache.get("inception")).items():
            out[k] = {"value": v}
    return out


def _prdc(heldout: np.ndarray, candidate: np.ndarray, cfg: EvaluateConfig, seed: int, cache: dict) -> dict:
    """Precision, recall, density, coverage in ``cfg.prdc.embeddings`` random-CNN embeddings (seeds):
    the mean is the value, with its spread (std) and every embedding's value."""
    ecfg = cfg.prdc
    seeds = [seed + 3 + e for e in range(ecfg.embeddings)]
    if "embed" not in cache:
        cache["embed"] = [embed(heldout, ecfg, s) for s in seeds]
    cfg_k = PRDCConfig(k=min(cfg.prdc.k, len(heldout) - 1, len(candidate) - 1))
    if cfg_k.k < 1:
        raise ValueError("precision/recall need at least two images per set")
    runs = [prdc_items(*standardise(er, embed(candidate, ecfg, s)), cfg_k) for er, s in zip(cache["embed"], seeds)]
    out = {}
    for k in runs[0]:
        vals = [float(r[k].mean()) for r in runs]
        items = np.mean([r[k] for r in runs], axis=0)   # each image's term, averaged over the embeddings
        out[k] = {"value": float(np.mean(vals)), "spread": float(np.std(vals)), "per_embedding": vals, "k": cfg_k.k,
                  "interval": mean_interval(items, cfg.intervals, seed + 7)}
    return out


def compare(heldout: np.ndarray, synthetic: np.ndarray, train: np.ndarray, cfg: EvaluateConfig, seed: int,
            inception=None) -> dict:
    """{metric: {value (held-out vs synthetic), reference (held-out vs train), better, kind, ...}}."""
    cache: dict = {}
    syn = quality_metrics(heldout, synthetic, cfg, seed, inception, cache)
    ref = quality_metrics(heldout, train, cfg, seed, inception, cache)
    out = {}
    for name, entry in syn.items():
        better, kind = METRICS[name]
        extra = {k: v for k, v in entry.items() if k != "value"}
        extra.update({f"reference_{k}": v for k, v in ref[name].items() if k != "value"})
        out[name] = {"value": entry["value"], "reference": ref[name]["value"], "better": better, "kind": kind,
                     **extra}
    return out


def is_better(entry_a: dict, entry_b: dict) -> bool:
    """Does value ``a`` beat value ``b`` for this metric (strictly)?"""
    a, b = entry_a["value"], entry_b["value"]
    return a < b if entry_a["better"] == "lower" else a > b


# ------------------------------------------------------------------------------------ reading data
def _load_one(path: str, mem: MemorisationConfig | None):
    img = pngio.read_float01(path)
    return img if mem is None else descriptor(img, mem)


def load_many(paths: list[Path], workers: int, mem: MemorisationConfig | None = None, desc: str = "load") -> np.ndarray:
    """Images (or memorisation descriptors when ``mem`` is given) of ``paths``, in order."""
    if not paths:
        raise ValueError(f"{desc}: no images")
    n = workers if len(paths) >= 64 else 1  # a pool costs more than it saves on a few images
    return np.stack(list(workpool.imap(_load_one, [(str(p), mem) for p in paths], n, desc)))


def _subsample(paths: list[Path], limit: int, seed: int) -> list[Path]:
    if limit <= 0 or len(paths) <= limit:
        return paths
    idx = np.sort(np.random.default_rng(seed).choice(len(paths), limit, replace=False))
    return [paths[i] for i in idx]


def _image_paths(folder: Path, ids: list[str], what: str) -> tuple[list[Path], list[str]]:
    paths, missing = [], []
    for i in ids:
        p = folder / f"{i}.png"
        (paths if p.exists() else missing).append(p if p.exists() else i)
    if not paths:
        raise FileNotFoundError(f"{folder}: none of the {len(ids)} {what} images of the split is there")
    return paths, missing


def _downscale(images: np.ndarray, height: int, width: int) -> np.ndarray:
    """Area-downscale a stack by the integer factor to ``height x width``."""
    n, h, w = images.shape
    if (h, w) == (height, width):
        return images
    if h % height or w % width or h // height != w // width:
        raise ValueError(f"{h}x{w} images are not an integer multiple of {height}x{width}")
    f = h // height
    return images.reshape(n, height, f, width, f).mean(axis=(2, 4))


FULL_SIZE_METRICS = {"patch_c2st_accuracy": "lower", "patch_precision": "higher", "patch_recall": "higher",
                     "patch_density": "higher", "patch_coverage": "higher"}


def full_size_metrics(heldout: np.ndarray, synthetic: np.ndarray, train: np.ndarray, lowres: np.ndarray,
                      cfg: EvaluateConfig, seed: int) -> dict:
    """The delivered (super-resolved) images against held-out real ones at full size: patch metrics,
    SWD per pyramid level (train vs held-out as the reference) and the consistency error (the
    delivered image area-downscaled against the GAN's image it came from, grey range [0, 1])."""
    syn = patch_metrics(heldout, synthetic, cfg.patches, cfg.c2st, cfg.prdc, cfg.intervals, seed + 11)
    ref = patch_metrics(heldout, train, cfg.patches, cfg.c2st, cfg.prdc, cfg.intervals, seed + 11)
    out: dict = {"size": f"{heldout.shape[1]}x{heldout.shape[2]}", "patch": cfg.patches.size,
                 "patches_per_class": syn["patches_per_class"], "images": syn["images"]}
    for name, better in FULL_SIZE_METRICS.items():
        key = name.removeprefix("patch_")
        out[name] = {"value": syn[key]["value"], "reference": ref[key]["value"], "better": better, "kind": "quality",
                     "interval": syn[key]["interval"], "reference_interval": ref[key]["interval"]}
    s_syn, s_ref = swd(heldout, synthetic, cfg.swd, seed + 12), swd(heldout, train, cfg.swd, seed + 12)
    out["swd_levels"] = {"value": s_syn["levels"], "reference": s_ref["levels"], "level_sizes": s_syn["level_sizes"],
                         "better": "lower", "kind": "quality",
                         "ratio": [a / b if b else float("inf") for a, b in zip(s_syn["levels"], s_ref["levels"])]}
    h, w = lowres.shape[1:]
    out["consistency_mae"] = {"value": float(np.abs(_downscale(synthetic, h, w) - lowres).mean()), "reference": 0.0,
                              "better": "lower", "kind": "quality"}
    return out


# ----------------------------------------------------------------------------------------- running
def evaluate_variant(cfg: EvaluateConfig, variant: str, variant_dir: Path, synthetic_dir: Path,
                     split: dict[str, list[str]], seed: int, workers: int = 1, inception=None) -> tuple[dict, list[dict], list[dict]]:
    """(metrics of one variant, nearest.csv rows, held-out nearest rows)."""
    images = Path(variant_dir) / "images"
    train_p, miss_t = _image_paths(images, split["train"], "train")
    held_ids = sorted(i for s in cfg.heldout_splits for i in split.get(s, []))
    if not held_ids:
        raise ValueError(f"split has no {'/'.join(cfg.heldout_splits)} images: nothing held out to compare with")
    held_p, miss_h = _image_paths(images, held_ids, "held-out")
    syn_files = [r["file"] for r in read_seeds(synthetic_dir)]
    syn_p = [Path(synthetic_dir) / "png16" / name for name in syn_files]
    full = (Path(synthetic_dir) / "sr.json").is_file()   # delivered at full size: whole images scaled down here
    lowres_p = [Path(synthetic_dir) / "lowres" / name for name in syn_files]

    # memorisation: every synthetic image against every training image
    mem = cfg.memorisation
    d_train = load_many(train_p, workers, mem, f"{variant} train descriptors")
    queries = load_many(held_p + (lowres_p if full else syn_p), workers, mem, f"{variant} held-out + synthetic descriptors")
    idx, dist = nearest(queries, d_train, mem)  # one pass: the training windows are built once
    idx_h, d_held, idx_s, dist_s = idx[:len(held_p)], dist[:len(held_p)], idx[len(held_p):], dist[len(held_p):]
    thr = threshold(d_held, mem)
    nearest_rows = [{"variant": variant, "file": name, "nearest_train_id": train_p[j].stem,
                     "distance": f"{d:.6g}", "threshold": f"{thr:.6g}", "flagged": int(d < thr)}
                    for name, j, d in zip(syn_files, idx_s, dist_s)]
    held_rows = [{"variant": variant, "image_id": p.stem, "nearest_train_id": train_p[j].stem, "distance": f"{d:.6g}"}
                 for p, j, d in zip(held_p, idx_h, d_held)]

    # distribution metrics on (seeded) subsamples
    # the synthetic set and the real reference set (train) at one size: k-NN coverage and recall
    # grow with the set size, so unequal sets would compare set sizes, not images
    m = min(len(syn_p), len(train_p), cfg.max_images or len(syn_p))
    heldout = load_many(_subsample(held_p, cfg.max_images, seed), workers, desc=f"{variant} held-out")
    train = load_many(_subsample(train_p, m, seed + 1), workers, desc=f"{variant} train")
    synthetic = load_many(_subsample(syn_p, m, seed + 2), workers, desc=f"{variant} synthetic")
    delivered = synthetic
    if full:
        synthetic = _downscale(delivered, *heldout.shape[1:]).astype(np.float32)
    for name, arr in (("synthetic", synthetic), ("train", train)):
        if arr.shape[1:] != heldout.shape[1:]:
            raise ValueError(f"{variant}: {name} images are {arr.shape[1:]}, held-out real {heldout.shape[1:]}")
    metrics = compare(heldout, synthetic, train, cfg, seed, inception)
    if full:
        fimages = Path(variant_dir) / "images_full"
        held_full = load_many(_subsample(_image_paths(fimages, held_ids, "held-out")[0], cfg.max_images, seed),
                              workers, desc=f"{variant} held-out full size")
        train_full = load_many(_subsample(_image_paths(fimages, split["train"], "train")[0], m, seed + 1), workers,
                               desc=f"{variant} train full size")
        lowres = load_many(_subsample(lowres_p, m, seed + 2), workers, desc=f"{variant} synthetic low-res")
        metrics["full_size"] = full_size_metrics(held_full, delivered, train_full, lowres, cfg, seed)
    metrics["near_copy_share"] = {
        "value": float(np.mean(dist_s < thr)), "reference": float(np.mean(d_held < thr)),
        "better": "lower", "kind": "privacy", "threshold": thr, "flagged": int(np.sum(dist_s < thr)),
        "synthetic_median_distance": float(np.median(dist_s)), "heldout_median_distance": float(np.median(d_held))}
    metrics["images"] = {"synthetic": len(syn_p), "train": len(train_p), "heldout": len(held_p),
                         "heldout_splits": list(cfg.heldout_splits),
                         "missing_from_variant": len(miss_t) + len(miss_h),
                         "used_for_distribution_metrics": {"synthetic": len(synthetic), "train": len(train),
                                                           "heldout": len(heldout)}}
    return metrics, nearest_rows, held_rows


def run_evaluate(cfg: EvaluateConfig, variants: list[str], seed: int, layout: Layout,
                 workers: int | None = None) -> dict:
    """The evaluate stage: every variant -> ``layout.metrics_json`` and ``layout.eval``."""
    root = Path(layout.root)
    split = read_split(layout.split_csv)
    inception = None
    if weights_available(config.resolve(cfg.inception_weights, root) if cfg.inception_weights else None):
        inception = load_inception(config.resolve(cfg.inception_weights, root), cfg.fid.device)
    elif cfg.inception_weights:
        print(f"[evaluate] {cfg.inception_weights} does not exist: FID/KID not computed")
    workers = config.workers(workers)
    all_metrics, nearest_rows, held_rows = {}, [], []
    for v in variants:
        m, n, h = evaluate_variant(cfg, v, layout.variant(v), layout.synthetic(v),
                                   split, seed, workers, inception)
        all_metrics[v], nearest_rows, held_rows = m, nearest_rows + n, held_rows + h
    with atomic.directory(layout.eval) as tmp:
        write_csv(tmp / "nearest.csv", NEAREST_COLUMNS, nearest_rows)
        write_csv(tmp / "heldout_nearest.csv", ["variant", "image_id", "nearest_train_id", "distance"], held_rows)
    atomic.write_text(layout.metrics_json, json.dumps(all_metrics, indent=2) + "\n")
    return all_metrics


def summary(metrics: dict) -> str:
    lines = []
    for v, m in metrics.items():
        parts = []
        for name in METRICS:
            e = m.get(name)
            if e is None:
                continue
            val = e["value"]
            parts.append(f"{name} {val:.3g} (ref {e['reference']:.3g})" if isinstance(val, float) else f"{name} {val}")
        lines.append(f"{v}: " + "; ".join(parts))
    return "\n".join(lines)
