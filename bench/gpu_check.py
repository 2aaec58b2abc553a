"""The one-call GPU check of the train stage: ``python -m bench.gpu_check`` on one GPU, at most
``--minutes`` (8), writing reports/bench/gpu.md and gpu.json and printing one table last.

Runs the library directly (:func:`pipeline.gan.train.train` with ``live=False``), so it needs only
torch, numpy, opencv, pandas, tqdm, pyyaml and scipy: no DVC, DVCLive, torchvision, ruamel,
albumentations or pydicom (the GPU machine has none of them). "ours" is params.yaml's ``train``
recipe at the GPU size (features 32, max_features 512); "earlier" is
:meth:`TrainConfig.baseline_recipe`.

1. kill + resume: ours at 72x128, bf16 autocast and channels_last, in a child process that is
   SIGKILLed once its first checkpoint exists; a second process resumes it to the next checkpoint
   (RNG streams must come back ``restored``).
2. host sync: the resumed run's hot loop (every step after its first, logging and checkpoints
   excluded) under ``torch.cuda.set_sync_debug_mode("error")``; then again with the train set in
   pinned host memory (``data_on_device_gb: 0``: pinned batch buffer, non_blocking copies).
3. the CUDA checkpoint of 1 (a copy taken at the kill) resumed on the CPU (``device: cpu``).
4. a CPU checkpoint (contiguous layout, foreach Adam) resumed on CUDA (channels_last, fused Adam,
   bf16): the Adam moments must take the parameters' layout.
5. two processes on the one GPU (``dist_backend: gloo``: NCCL refuses two ranks on one device):
   the generator's BatchNorm over the global batch, the replica check (weights and buffers) at
   the end, and the two ranks' EMA generators compared (sha256).
6. DiffAugment (all four ops) and ``critic_norm: layer`` on, bf16 + channels_last.
7. CUDA against the CPU for two steps in fp32 (amp off, TF32 off, contiguous): every random draw
   made on the host from one generator and moved (:func:`host_draws`), so both runs see the same
   numbers; losses and the exported generators compared.
8. throughput at 256x256, batch 64, the same n_critic for all: earlier (IEEE fp32, and TF32),
   ours (bf16 + channels_last, TF32 for the fp32 rest), ours with ``critic_concat``, ours with
   ``compile: true``, and the earlier architecture at features 256 (fp32, and bf16 +
   channels_last); images/s and ``torch.cuda.max_memory_allocated``, each configuration in its
   own process. images/s = steps x batch x (n_critic + 1) / s over the second half of the steps.
9. ``python -m bench.quality`` on ``--quality-raw DIR`` (e.g. the demo archive) for the minutes
   left; without that argument the row is n/a (bench.quality needs a folder of OPGs).

Rows skipped for want of time are n/a, not FAIL. ``--dry-run``: the same sequence on the CPU at
tiny sizes (seconds; tests/bench/test_gpu_check.py runs it in CI), the training checks through
the same functions but in this process (the killed run and the two ranks are children; "CUDA" is
the CPU there); no compile row (inductor on the CPU takes minutes), no bench.quality. On the CPU
the sync check is not applicable and peak memory is not measured.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import io
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from bench.common import machine, markdown_table
from pipeline.core import atomic
from pipeline.core.config import build
from pipeline.gan.checkpoint import checkpoints
from pipeline.gan.models import load_generator
from pipeline.gan.train import TrainConfig, train

GPU_SIZE = dict(features=32, max_features=512)


# ------------------------------------------------------------------------------------ the configs
def ours(params_file: str | os.PathLike = "params.yaml", **changes: Any) -> dict:
    """params.yaml's train recipe (pyyaml: the GPU machine has no ruamel) as TrainConfig keywords."""
    import yaml

    with open(params_file, encoding="utf-8") as f:
        section = dict(yaml.safe_load(f)["train"])
    section.pop("overrides", None)
    return {**section, **changes}


def _config(kind: str, cfg: dict) -> TrainConfig:
    if kind == "earlier":
        return TrainConfig.baseline_recipe(**cfg)
    return build(TrainConfig, cfg, "train")


# ------------------------------------------------------------------------------------- one child
@contextlib.contextmanager
def host_draws(seed: int):
    """Within: ``torch.rand``, ``randn`` and ``randint`` draw on the host from one generator seeded
    ``seed`` (whatever device or generator the caller names) and move the numbers to the device
    asked for, so that a CUDA run and a CPU run of the same calls see the same random numbers."""
    gen = torch.Generator().manual_seed(seed)
    real = {name: getattr(torch, name) for name in ("rand", "randn", "randint")}

    def host(fn):
        def draw(*args, device=None, generator=None, **kw):
            return fn(*args, generator=gen, **kw).to("cpu" if device is None else device)
        return draw

    for name, fn in real.items():
        setattr(torch, name, host(fn))
    try:
        yield
    finally:
        for name, fn in real.items():
            setattr(torch, name, fn)


def _digest(model: torch.nn.Module) -> str:
    """sha256 of a model's state (weights and buffers), as bytes on the host."""
    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().to("cpu").contiguous().numpy().tobytes())
    return h.hexdigest()


def child(spec: dict) -> dict:
    """One training run (in a child process, or in this one for the dry run); returns its row."""
    cfg = _config(spec["kind"], spec["cfg"])
    h, w = spec["size"]
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(spec.get("images", 64), 1, h, w, generator=gen) * 2 - 1
    cuda = cfg.device == "cuda"
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    row: dict[str, Any] = {}
    last: dict[str, str] = {}

    def on_step(step: int, ema_model: torch.nn.Module) -> bool:
        if spec.get("digest") and step == cfg.steps:
            last["ema_sha256"] = _digest(ema_model)
        return False

    draws = host_draws(spec["same_draws"]) if spec.get("same_draws") is not None else contextlib.nullcontext()
    t0 = time.perf_counter()
    try:
        with draws:
            result = train(cfg, "gpu_check", h, w, 1, "", "", Path(spec["out"]), images=images, progress=False,
                           live=False, sync_debug=spec.get("sync_debug"), stop_after=spec.get("stop_after"),
                           threads=spec.get("threads"), on_step=on_step)
        row.update(result, **last)
    except torch.OutOfMemoryError as e:
        row["error"] = f"OOM: {str(e).splitlines()[0][:200]}"
    except (RuntimeError, FloatingPointError, ValueError) as e:   # a host sync in "error" mode lands here
        row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"
    row["wall_s"] = time.perf_counter() - t0
    row["peak_mem_gb"] = torch.cuda.max_memory_allocated() / 2**30 if cuda else None
    row["config"] = {"features": cfg.features, "max_features": cfg.max_features, "batch": cfg.batch,
                     "n_critic": cfg.n_critic, "model": cfg.model}
    return row


def _spawn(spec: dict, timeout: float) -> dict:
    r = subprocess.run([sys.executable, "-m", "bench.gpu_check", "--child", json.dumps(spec)],
                       capture_output=True, text=True, timeout=max(timeout, 1))
    line = next((ln for ln in r.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if r.returncode != 0 or line is None:
        return {"error": f"child exited {r.returncode}: {(r.stderr or r.stdout).strip().splitlines()[-1:]}"}
    return json.loads(line[7:])


def _spawn_ranks(spec: dict, world: int, timeout: float) -> list[dict]:
    """``world`` children as torchrun's ranks would be (RANK, WORLD_SIZE, MASTER_*), all with
    LOCAL_RANK 0: on one GPU (or the CPU). Killed together at ``timeout``."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    procs = []
    for rank in range(world):
        env = {**os.environ, "RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": "0",
               "LOCAL_WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
        procs.append(subprocess.Popen([sys.executable, "-m", "bench.gpu_check", "--child", json.dumps(spec)],
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    deadline = time.monotonic() + max(timeout, 1)
    rows = []
    for p in procs:
        try:
            out, err = p.communicate(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            out, err = p.communicate()
            rows.append({"error": f"timed out after {timeout:.0f} s"})
            continue
        line = next((ln for ln in out.splitlines() if ln.startswith("RESULT ")), None)
        rows.append(json.loads(line[7:]) if p.returncode == 0 and line else
                    {"error": f"rank exited {p.returncode}: {(err or out).strip().splitlines()[-1:]}"})
    return rows


def _finite(r: dict) -> bool:
    return all(isinstance(r.get(k), float) and math.isfinite(r[k]) for k in ("loss_d", "loss_g", "wasserstein", "gp"))


class Check:
    """The sequence, its budget and its rows."""

    def __init__(self, dry: bool, minutes: float, params_file: str, quality_raw: list[str] | None = None) -> None:
        self.dry, self.deadline = dry, time.monotonic() + minutes * 60
        self.device = "cpu" if dry else "cuda"
        self.params_file = params_file
        self.quality_raw = list(quality_raw or [])
        self.rows: list[dict] = []
        self.threads = 1 if dry else None   # dry run: small ops on a shared CPU run fastest on one thread
        self.tmp = Path(tempfile.mkdtemp(prefix="gpu_check_"))

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def run(self, spec: dict, timeout: float = 240) -> dict:
        if self.dry:
            return child(spec)
        try:
            return _spawn(spec, min(timeout, self.left() - 5))
        except subprocess.TimeoutExpired:
            return {"error": f"timed out (budget: {self.left():.0f} s left)"}

    def add(self, check: str, ok: bool | None, note: str, **figures: Any) -> None:
        status = "n/a" if ok is None else ("ok" if ok else "FAIL")
        self.rows.append({"check": check, "status": status, "note": note, **figures})
        print(f"[gpu_check] {self.left():5.0f} s left  {check}: {status} {note}", flush=True)

    # ------------------------------------------------------------------ 1-3: kill, resume, sync, cpu
    def resume_checks(self) -> None:
        every = 2 if self.dry else 20
        size = (16, 32) if self.dry else (72, 128)
        tiny = dict(z_dim=8, features=4, max_features=16, batch=4) if self.dry else dict(GPU_SIZE, batch=16)
        base = ours(self.params_file, **tiny, device=self.device, amp="bf16", channels_last="on",
                    checkpoint_every=every, keep_checkpoints=3, log_every=every, steps=10_000)
        out = self.tmp / "killed"
        spec = {"kind": "ours", "cfg": base, "size": size, "out": str(out), "threads": self.threads}
        log = self.tmp / "killed.log"   # a file, not a pipe: a full pipe would stall the child
        with open(log, "w") as f:
            proc = subprocess.Popen([sys.executable, "-m", "bench.gpu_check", "--child", json.dumps(spec)],
                                    stdout=subprocess.DEVNULL, stderr=f)
        limit = time.monotonic() + min(180, self.left() - 60)
        while not checkpoints(out / "checkpoints") and proc.poll() is None and time.monotonic() < limit:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        err = log.read_text()
        found = checkpoints(out / "checkpoints")
        if not found:
            self.add("kill after first checkpoint", False, f"no checkpoint (child rc {proc.returncode}: "
                     f"{err.strip().splitlines()[-1:] if err else ''})")
            return
        k = found[-1][0]
        self.add("kill after first checkpoint", proc.returncode == -signal.SIGKILL,
                 f"SIGKILL with checkpoint step {k} on disk", size=f"{size[0]}x{size[1]}")
        snapshot = self.tmp / "snapshot"
        shutil.copytree(out, snapshot)

        resumed = self.run({**spec, "cfg": {**base, "steps": k + every}, "sync_debug": "error"})
        ok = (not resumed.get("error") and resumed.get("resumed_from") == k and resumed.get("finished")
              and resumed.get("rng_on_resume") == "restored")
        self.add("resume the killed run", ok, resumed.get("error") or
                 f"from step {resumed.get('resumed_from')} to {resumed.get('step')}, RNG {resumed.get('rng_on_resume')}, "
                 f"bf16 {resumed.get('amp_bf16')}, channels_last {resumed.get('channels_last')}",
                 **_figures(resumed))
        self._sync_row("host sync, train set on the device", resumed)

        pinned = self.run({**spec, "out": str(self.tmp / "pinned"), "sync_debug": "error",
                           "cfg": {**base, "steps": 2 * every, "data_on_device_gb": 0.0}})
        self._sync_row("host sync, pinned host train set", pinned,
                       extra=f"pinned batch buffer {pinned.get('data_pinned')}")

        on_cpu = self.run({**spec, "out": str(snapshot), "cfg": {**base, "steps": k + 2, "device": "cpu"}})
        ok = not on_cpu.get("error") and on_cpu.get("resumed_from") == k and on_cpu.get("finished")
        self.add(f"{'CUDA' if not self.dry else 'CPU (dry run)'} checkpoint resumed on the CPU", ok,
                 on_cpu.get("error") or f"step {k} -> {on_cpu.get('step')} on {on_cpu.get('device')}, "
                 f"RNG {on_cpu.get('rng_on_resume')}", wall_s=on_cpu.get("wall_s"))

    # --------------------------------------------------------- 4-7: layouts, ranks, options, numbers
    def _small(self, **changes: Any) -> tuple[dict, tuple[int, int], int]:
        every = 2 if self.dry else 10
        size = (16, 32) if self.dry else (72, 128)
        tiny = dict(z_dim=8, features=4, max_features=16, batch=4) if self.dry else dict(GPU_SIZE, batch=16)
        cfg = ours(self.params_file, **{**tiny, "device": self.device, "amp": "bf16", "channels_last": "on",
                                        "checkpoint_every": every, "keep_checkpoints": 2, "log_every": every, **changes})
        return cfg, size, every

    def _skipped(self, name: str, need: float = 45) -> bool:
        if self.left() < need:
            self.add(name, None, f"skipped: {self.left():.0f} s of the budget left")
            return True
        return False

    def cpu_to_cuda(self) -> None:
        name = f"CPU checkpoint resumed on {'the CPU, channels_last (dry run)' if self.dry else 'CUDA'}"
        if self._skipped(name):
            return
        # amp and channels_last auto: off on the CPU, bf16 and channels_last on CUDA (the same config:
        # resumable); the dry run asks for channels_last on its second run
        cfg, size, every = self._small(steps=10_000, amp="auto", channels_last="auto")
        out = str(self.tmp / "cpu_first")
        first = self.run({"kind": "ours", "size": size, "out": out, "threads": self.threads,
                          "cfg": {**cfg, "device": "cpu", "steps": every}})
        if first.get("error") or not first.get("finished"):
            self.add(name, False, f"the CPU run: {first.get('error') or first}")
            return
        then = self.run({"kind": "ours", "size": size, "out": out, "threads": self.threads,
                         "cfg": {**cfg, "steps": 2 * every, **({"channels_last": "on"} if self.dry else {})}})
        ok = not then.get("error") and then.get("resumed_from") == every and then.get("finished") and _finite(then)
        self.add(name, ok, then.get("error") or f"step {every} -> {then.get('step')} on {then.get('device')}, "
                 f"channels_last {then.get('channels_last')}, bf16 {then.get('amp_bf16')}, finite losses "
                 f"{_finite(then)}", size=f"{size[0]}x{size[1]}", **_figures(then))

    def two_ranks(self) -> None:
        name = "two processes, one device (gloo)"
        if self._skipped(name, 60):
            return
        cfg, size, every = self._small(steps=4, dist_backend="gloo")
        spec = {"kind": "ours", "size": size, "out": str(self.tmp / "two_ranks"), "threads": self.threads,
                "cfg": cfg, "digest": True}
        ranks = _spawn_ranks(spec, 2, min(240, self.left() - 10))
        errors = [r["error"] for r in ranks if r.get("error")]
        digests = {r.get("ema_sha256") for r in ranks}
        ok = not errors and all(r.get("world") == 2 and r.get("finished") for r in ranks) and len(digests) == 1 \
            and None not in digests
        self.add(name, ok, "; ".join(errors) or f"world {ranks[0].get('world')}, replicas (weights and buffers) "
                 f"checked, EMA generators {'identical' if len(digests) == 1 else 'DIFFER'} on the ranks",
                 size=f"{size[0]}x{size[1]}", **_figures(ranks[0]))

    def options(self) -> None:
        name = "DiffAugment + critic_norm layer"
        if self._skipped(name):
            return
        cfg, size, _ = self._small(steps=4 if self.dry else 20, diffaugment="translation,cutout,brightness,contrast",
                                   critic_norm="layer")
        r = self.run({"kind": "ours", "size": size, "out": str(self.tmp / "options"), "threads": self.threads,
                      "cfg": cfg})
        ok = not r.get("error") and r.get("finished") and _finite(r)
        self.add(name, ok, r.get("error") or f"{r.get('step')} steps on {r.get('device')}, finite losses {_finite(r)}",
                 size=f"{size[0]}x{size[1]}", **_figures(r))

    def cuda_vs_cpu(self) -> None:
        name = "CUDA vs CPU, 2 steps fp32" if not self.dry else "CUDA vs CPU, 2 steps fp32 (dry run: CPU twice)"
        if self._skipped(name):
            return
        cfg, size, _ = self._small(steps=2, amp="off", channels_last="off", tf32=False, log_every=1,
                                   checkpoint_every=2)
        rows = {}
        for dev in ("cpu", self.device if not self.dry else "cpu"):
            key = dev if dev not in rows else f"{dev} again"
            rows[key] = self.run({"kind": "ours", "size": size, "out": str(self.tmp / f"vs_{key.replace(' ', '_')}"),
                                  "threads": self.threads, "cfg": {**cfg, "device": dev}, "same_draws": 5})
        (ka, a), (kb, b) = rows.items()
        if a.get("error") or b.get("error"):
            self.add(name, False, a.get("error") or b.get("error"))
            return
        diffs = {k: abs(a[k] - b[k]) / max(1.0, abs(a[k])) for k in ("loss_d", "loss_g", "wasserstein", "gp")}
        ga, _ = load_generator(self.tmp / f"vs_{ka.replace(' ', '_')}" / "generator.pt")
        gb, _ = load_generator(self.tmp / f"vs_{kb.replace(' ', '_')}" / "generator.pt")
        weights = max((x - y).abs().max().item() for x, y in zip(ga.state_dict().values(), gb.state_dict().values())
                      if x.is_floating_point())
        ok = max(diffs.values()) <= 1e-3
        self.add(name, ok, f"{ka} vs {kb}: largest loss difference {max(diffs.values()):.2e} (relative, "
                 f"limit 1e-3), largest EMA weight difference {weights:.2e}", size=f"{size[0]}x{size[1]}")

    def _sync_row(self, name: str, r: dict, extra: str = "") -> None:
        if self.dry:
            self.add(name, None, "CPU: no host-device syncs to detect" + (f"; {extra}" if extra else ""))
            return
        err = r.get("error")
        steps = (r.get("step") or 0) - (r.get("resumed_from") or 0) - 1
        self.add(name, not err, err or f"no synchronizing CUDA call in {steps} guarded steps"
                 + (f"; {extra}" if extra else ""), **_figures(r))

    # ----------------------------------------------------------------------------------- 4: speed
    def throughput(self) -> None:
        size = (32, 32) if self.dry else (256, 256)
        batch, steps = (4, 4) if self.dry else (64, 16)
        n_critic = ours(self.params_file)["n_critic"]
        timing = dict(batch=batch, n_critic=n_critic, steps=10**6, log_every=steps // 2, checkpoint_every=10**6,
                      sample_every=10**6, device=self.device)
        size_ours = dict(z_dim=8, features=4, max_features=16) if self.dry else GPU_SIZE
        f64, f256 = (8, 16) if self.dry else (64, 256)   # the earlier recipe ran at features 64
        rows = [("earlier fp32", "earlier", dict(timing, features=f64, tf32=False)),
                ("ours bf16", "ours", ours(self.params_file, **size_ours, **timing, amp="bf16", channels_last="on")),
                ("ours bf16 + critic_concat", "ours", ours(self.params_file, **size_ours, **timing, amp="bf16",
                                                           channels_last="on", critic_concat=True)),
                ("earlier f256 fp32", "earlier", dict(timing, features=f256, tf32=False)),
                ("earlier f256 bf16", "earlier", dict(timing, features=f256, amp="bf16", channels_last="on")),
                ("ours bf16 + compile", "ours", ours(self.params_file, **size_ours, **timing, amp="bf16",
                                                     channels_last="on", compile=True)),
                ("earlier tf32", "earlier", dict(timing, features=f64, tf32=True))]   # last: first to go
        base_ips = None
        for name, kind, cfg in rows:
            if self.dry and cfg.get("compile"):
                self.add(name, None, "skipped in the dry run (inductor compiles for minutes on the CPU)")
                continue
            if self._skipped(name):
                continue
            r = self.run({"kind": kind, "cfg": cfg, "size": size, "out": str(self.tmp / name.replace(" ", "_")),
                          "stop_after": steps, "threads": self.threads}, timeout=240 if cfg.get("compile") else 150)
            ips = r.get("images_per_s")
            if name == "earlier fp32":
                base_ips = ips
            vs = ips / base_ips if ips and base_ips else None
            self.add(name, not r.get("error"), r.get("error") or f"{r.get('device')}, {steps} steps, the last "
                     f"{steps // 2} timed", size=f"{size[0]}x{size[1]}", vs_earlier=vs, **_figures(r))

    # ----------------------------------------------------------------------------------- 5: quality
    def quality(self) -> None:
        if importlib.util.find_spec("bench.quality") is None:
            self.add("bench.quality", None, "bench/quality.py is absent: not run")
            return
        if self.dry:
            self.add("bench.quality", None, "present; not run in the dry run")
            return
        if not self.quality_raw:
            self.add("bench.quality", None, "not run: give --quality-raw DIR (a folder of OPGs, e.g. the demo archive)")
            return
        left = self.left() - 10
        if left < 90:
            self.add("bench.quality", None, f"skipped: {left:.0f} s of the budget left")
            return
        # one recipe, one seed, one size: preprocessing and evaluation take the rest of the time
        argv = [sys.executable, "-m", "bench.quality", *[a for d in self.quality_raw for a in ("--raw", d)],
                "--size", "36x64", "--seeds", "1", "--recipes", "ours", "--curve-points", "1", "--threads", "0",
                "--budget-s", f"{left * 0.4:.0f}", "--out", str(self.tmp / "quality")]
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=left)
            tail = (r.stdout or r.stderr).strip().splitlines()[-1:] or [""]
            self.add("bench.quality", r.returncode == 0, f"rc {r.returncode}: {tail[0][:200]}")
        except subprocess.TimeoutExpired:
            self.add("bench.quality", False, f"stopped at the budget ({left:.0f} s)")


def _figures(r: dict) -> dict:
    cfg = r.get("config", {})
    return {k: v for k, v in {"features": cfg.get("features"), "batch": cfg.get("batch"),
                              "n_critic": cfg.get("n_critic"), "bf16": r.get("amp_bf16"), "tf32": r.get("tf32"),
                              "channels_last": r.get("channels_last"), "compile": r.get("compile"),
                              "images_per_s": r.get("images_per_s"), "peak_mem_gb": r.get("peak_mem_gb")}.items()
            if v is not None}


COLUMNS = ["check", "status", "size", "features", "batch", "n_critic", "bf16", "tf32", "channels_last", "compile",
           "images_per_s", "vs_earlier", "peak_mem_gb", "note"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true", help="CPU, tiny sizes (CI)")
    ap.add_argument("--minutes", type=float, default=8.0, help="the whole check's budget")
    ap.add_argument("--out", default="reports/bench", help="folder for gpu.md / gpu.json")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--quality-raw", action="append", default=[], metavar="DIR",
                    help="a folder of OPGs for the bench.quality row (repeatable); without it the row is n/a")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print("RESULT " + json.dumps(child(json.loads(args.child))), flush=True)
        return 0
    if not args.dry_run and not torch.cuda.is_available():
        print("bench.gpu_check: no CUDA device (use --dry-run on the CPU)", file=sys.stderr)
        return 2
    t0 = time.monotonic()
    check = Check(args.dry_run, args.minutes, args.params, args.quality_raw)
    try:
        check.resume_checks()
        check.cpu_to_cuda()
        check.two_ranks()
        check.options()
        check.cuda_vs_cpu()
        check.throughput()
        check.quality()
    finally:
        shutil.rmtree(check.tmp, ignore_errors=True)
    name = "gpu_dry_run" if args.dry_run else "gpu"
    device = "cpu (dry run)" if args.dry_run else torch.cuda.get_device_name(0)
    payload = {"benchmark": name, "machine": machine(), "device": device, "torch": torch.__version__,
               "dry_run": args.dry_run, "budget_s": args.minutes * 60, "elapsed_s": time.monotonic() - t0,
               "rows": check.rows,
               "note": "images/s = steps x batch x (n_critic + 1) / s over the second half of the steps; "
                       "fp32 rows are IEEE fp32 (tf32 false), tf32 rows use TF32 for fp32 matmuls/convs; "
                       "peak_mem_gb = torch.cuda.max_memory_allocated in GiB (none on the CPU)"}
    table = markdown_table(check.rows, COLUMNS)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic.write_text(out / f"{name}.json", json.dumps(payload, indent=2) + "\n")
    atomic.write_text(out / f"{name}.md", f"## {name} ({device}, torch {torch.__version__}, "
                      f"{payload['elapsed_s']:.0f} s of {payload['budget_s']:.0f})\n\n{table}\n")
    print(table)
    return 0 if all(r["status"] != "FAIL" for r in check.rows) else 1


if __name__ == "__main__":
    sys.exit(main())
