"""Training throughput and peak memory: `model: baseline` (the earlier attempt's DCGAN recipe, fp32)
against ours (ResNet generator/critic with DiffAugment + EMA; bf16 autocast and channels_last on
CUDA) at the same resolution, batch and n_critic, through the real training loop
(:func:`pipeline.gan.train.train` on random images). Each configuration runs in its own process so that
its peak memory is its own.

- images/s = generator steps x batch x (n_critic + 1) / s, timed over the second half of the steps
  (the first half warms up: allocator, cuDNN autotuning, torch.compile).
- peak memory: on CUDA ``torch.cuda.max_memory_allocated``; on the CPU the process's peak resident
  set (``ru_maxrss``) minus its resident set just before training (imports and data excluded).
- "fp32" rows are IEEE fp32 (``tf32: false``: on CUDA the fp32 matmuls and convolutions would
  otherwise run in TF32); "critic_concat": real and fake through the critic in one forward.

    python -m bench.train                      # CPU: 64x64 and 128x128, batch 8
    python -m bench.train --device cuda        # GPU: 128x128 and 256x256 at batch 64, plus the
                                               # baseline at features 256, 256x256, batch 64
    python -m bench.train --configs "ours,ours + critic_concat"   # only these rows (and the baseline)
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import markdown_table, save

OURS = dict(model="resnet", z_dim=128, features=16, max_features=256)


def _configs(device: str, sizes: list[tuple[int, int]], batch: int, n_critic: int, steps: int) -> list[dict]:
    common = dict(batch=batch, n_critic=n_critic, steps=steps, log_every=steps // 2, sample_every=10**6,
                  checkpoint_every=10**6, keep_checkpoints=1, device=device)
    runs = []
    for h, w in sizes:
        runs.append({"name": "baseline fp32", "h": h, "w": w, "baseline": True, "cfg": {**common, "tf32": False}})
        runs.append({"name": "ours", "h": h, "w": w, "baseline": False, "cfg": {**OURS, **common}})
        runs.append({"name": "ours + critic_concat", "h": h, "w": w, "baseline": False,
                     "cfg": {**OURS, **common, "critic_concat": True}})
        if device == "cpu":   # bf16 autocast on the CPU, for information (auto leaves it off there)
            runs.append({"name": "ours bf16", "h": h, "w": w, "baseline": False,
                         "cfg": {**OURS, **common, "amp": "bf16"}})
        if device == "cuda":
            runs.append({"name": "ours bf16 + compile", "h": h, "w": w, "baseline": False,
                         "cfg": {**OURS, **common, "compile": True}})
    if device == "cuda":
        # the earlier attempt's architecture at twice its widest run, with our training loop's speed
        # settings (bf16, channels_last), and as it ran (fp32)
        for name, extra in (("baseline f256 bf16", {"amp": "bf16", "channels_last": "on"}),
                            ("baseline f256 fp32", {"tf32": False})):
            runs.append({"name": name, "h": 256, "w": 256, "baseline": True,
                         "cfg": {**common, "batch": 64, "features": 256, **extra}})
    return runs


def _rss_kb() -> int:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    import os

    return pages * os.sysconf("SC_PAGE_SIZE") // 1024


def run_one(spec: dict) -> dict:
    """Child process: one configuration, timed; returns its row."""
    import resource

    import torch

    from pipeline.gan.train import TrainConfig, train

    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])

    cfg = TrainConfig.baseline_recipe(**spec["cfg"]) if spec["baseline"] else TrainConfig(**spec["cfg"])
    h, w = spec["h"], spec["w"]
    images = torch.rand(max(64, cfg.batch), 1, h, w, generator=torch.Generator().manual_seed(0)) * 2 - 1
    cuda = cfg.device == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    rss0 = _rss_kb()
    row = {"config": spec["name"], "size": f"{h}x{w}", "batch": cfg.batch, "n_critic": cfg.n_critic,
           "features": cfg.features}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            result = train(cfg, "bench", h, w, 1, "", "", Path(tmp) / "out", images=images, progress=False)
        except torch.OutOfMemoryError:
            return {**row, "images_per_s": "OOM"}
    if cuda:
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mb = max(0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
    return {**row, "device": result["device"], "bf16": result["amp_bf16"], "tf32": result["tf32"],
            "images_per_s": result["images_per_s"],
            "peak_mem_mb": peak_mb, "peak_mem_kind": "cuda allocated" if cuda else "cpu rss delta"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--sizes", default=None, help="HxW,HxW (default: 64x64,128x128 CPU; 128x128,256x256 CUDA)")
    ap.add_argument("--batch", type=int, default=None, help="default: 8 on the CPU, 64 on CUDA")
    ap.add_argument("--n-critic", type=int, default=2)
    ap.add_argument("--steps", type=int, default=None, help="generator steps per run (half of them warm-up)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (default 1 on the CPU: on a shared machine, OpenMP barriers "
                         "across descheduled threads dominate small ops; 0 = torch's default)")
    ap.add_argument("--configs", default=None,
                    help="comma-separated row names to run (the baseline fp32 rows always run: the reference)")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print("ROW " + json.dumps(run_one(json.loads(args.one))))
        return
    cuda = args.device == "cuda"
    sizes = [tuple(int(v) for v in s.split("x")) for s in
             (args.sizes or ("128x128,256x256" if cuda else "64x64,128x128")).split(",")]
    batch = args.batch or (64 if cuda else 8)
    steps = args.steps or (40 if cuda else 6)
    rows = []
    threads = (0 if cuda else 1) if args.threads is None else args.threads
    wanted = None if args.configs is None else {c.strip() for c in args.configs.split(",")} | {"baseline fp32"}
    for spec in _configs(args.device, sizes, batch, args.n_critic, steps):
        if wanted is not None and spec["name"] not in wanted:
            continue
        spec["threads"] = threads
        r = subprocess.run([sys.executable, "-m", "bench.train", "--one", json.dumps(spec)],
                           capture_output=True, text=True)
        line = next((ln for ln in r.stdout.splitlines() if ln.startswith("ROW ")), None)
        if r.returncode != 0 or line is None:
            raise RuntimeError(f"{spec['name']} {spec['h']}x{spec['w']} failed:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}")
        rows.append(json.loads(line[4:]))
        print(rows[-1], flush=True)
    for row in rows:   # speed-up against the baseline at the same size and batch
        base = next((b for b in rows if b["config"] == "baseline fp32" and b["size"] == row["size"]
                     and b["batch"] == row["batch"]), None)
        if base and isinstance(row["images_per_s"], float) and isinstance(base["images_per_s"], float):
            row["vs_baseline"] = row["images_per_s"] / base["images_per_s"]
    cols = ["config", "size", "batch", "n_critic", "features", "device", "bf16", "tf32", "images_per_s", "vs_baseline",
            "peak_mem_mb", "peak_mem_kind"]
    name = "train" if not cuda else "train_cuda"
    save(name, {"device": args.device, "cpu_threads": threads or "torch default", "rows": rows, "ours": OURS,
                "note": "images/s = generator steps x batch x (n_critic + 1) / s over the second half of "
                        "the steps; baseline = TrainConfig.baseline_recipe (fp32, no DiffAugment, no EMA)"},
         markdown_table(rows, cols))


if __name__ == "__main__":
    main()
