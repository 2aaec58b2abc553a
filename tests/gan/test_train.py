"""The training loop: a few steps per model, exports, DVCLive, resume bit-equality, config checks,
trainset errors, 2-process gloo runs (torchrun -> one process and back), all on the CPU."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.core import pngio
from pipeline.core.config import ConfigError, build
from pipeline.gan.models import load_generator
from pipeline.gan.train import TrainConfig, checkpoints, train
from pipeline.gan.trainset import load_train_images
from tests import builders

H, W = 16, 32
TINY = dict(z_dim=8, features=4, max_features=16, batch=4, n_critic=2, log_every=2, sample_every=2,
            checkpoint_every=2, sample_count=4, device="cpu")   # the CPU, also on a machine with GPUs


pytestmark = pytest.mark.usefixtures("one_torch_thread")




@pytest.fixture
def dataset(tmp_path):
    return builders.make_train_set(tmp_path / "data")


def run(cfg, out, dataset, **kw):
    images, split = dataset
    return train(cfg, "v", H, W, 123, images, split, out, progress=False, **kw)


@pytest.mark.parametrize("model", ["resnet", "baseline"])
def test_a_few_steps_export_a_loadable_generator_and_logs(model, dataset, tmp_path):
    cfg = TrainConfig(model=model, steps=4, keep_checkpoints=1, **TINY)
    out = tmp_path / "models" / "v"
    result = run(cfg, out, dataset)
    assert result["finished"] and result["step"] == 4 and result["train_images"] == 12
    gen, info = load_generator(out / "generator.pt")
    assert info["step"] == 4 and info["model"]["model"] == model
    x = gen(torch.randn(3, gen.z_dim))
    assert x.shape == (3, 1, H, W) and x.abs().max() <= 1
    assert [s for s, _ in checkpoints(out / "checkpoints")] == [4]      # pruned to keep_checkpoints
    metrics = json.loads((out / "live" / "metrics.json").read_text())
    assert {"loss_d", "loss_g", "wasserstein", "gp"} <= set(metrics) and metrics["step"] == 4
    assert all(np.isfinite(metrics[k]) for k in ("loss_d", "loss_g", "wasserstein", "gp"))
    samples = sorted((out / "live" / "plots" / "images" / "samples").glob("*.png"))
    assert [p.stem for p in samples] == ["0000002", "0000004"]
    grid = pngio.read_png16(samples[-1])
    assert grid.shape[0] > H and grid.shape[1] > W and grid.std() > 0


def _states(path: Path) -> dict:
    return torch.load(path, weights_only=True)


def _assert_equal_tree(a, b, where=""):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), f"{where} differs"
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _assert_equal_tree(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_equal_tree(x, y, f"{where}[{i}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def test_resume_after_a_kill_is_bit_identical(dataset, tmp_path):
    cfg = TrainConfig(steps=6, hflip=True, **TINY)
    straight = tmp_path / "straight"
    run(cfg, straight, dataset)
    killed = tmp_path / "killed"
    first = run(cfg, killed, dataset, stop_after=5)              # checkpoint at 4, step 5 is lost
    assert not first["finished"] and not (killed / "generator.pt").exists()
    assert checkpoints(killed / "checkpoints")[-1][0] == 4
    second = run(cfg, killed, dataset)
    assert second["resumed_from"] == 4 and second["finished"] and second["rng_on_resume"] == "restored"
    a, b = _states(straight / "checkpoints" / "step_0000006.pt"), _states(killed / "checkpoints" / "step_0000006.pt")
    for key in ("G", "D", "ema", "opt_g", "opt_d", "rng", "step"):
        _assert_equal_tree(a[key], b[key], key)
    ga, _ = load_generator(straight / "generator.pt")
    gb, _ = load_generator(killed / "generator.pt")
    _assert_equal_tree(ga.state_dict(), gb.state_dict(), "generator.pt")
    # DVCLive history: no duplicate rows from the lost step
    header, *rows = (killed / "live" / "plots" / "metrics" / "loss_d.tsv").read_text().split("\n")
    col = header.split("\t").index("step")
    assert [int(r.split("\t")[col]) for r in rows if r] == [2, 4, 6]


def test_a_changed_config_starts_afresh_and_more_steps_continue(dataset, tmp_path, capsys):
    out = tmp_path / "m"
    run(TrainConfig(steps=2, **TINY), out, dataset)
    longer = run(TrainConfig(steps=4, tf32=False, gpus=1, **TINY), out, dataset)   # launch keys: resumable
    assert longer["resumed_from"] == 2
    other = run(TrainConfig(steps=4, **{**TINY, "n_critic": 1}), out, dataset)
    assert other["resumed_from"] == 0 and other["finished"]
    assert "another run (differs in config, train.n_critic): starting afresh" in capsys.readouterr().out


def test_other_pixels_under_the_same_ids_start_afresh(dataset, tmp_path, capsys):
    """A changed crop or letterbox upstream rewrites the train images under the same ids: their
    checkpoints belong to other data and must not be resumed (else `dvc repro` would re-export a
    generator trained on the old images)."""
    out = tmp_path / "m"
    run(TrainConfig(steps=2, **TINY), out, dataset)
    images, _ = dataset
    first = sorted(Path(images).glob("*.png"))[0]
    img = pngio.read_png16(first)
    pngio.write_png16(first, np.ascontiguousarray(65535 - img))   # same id, other pixels
    again = run(TrainConfig(steps=2, **TINY), out, dataset)
    assert again["resumed_from"] == 0 and again["finished"]
    assert "another run (differs in data): starting afresh" in capsys.readouterr().out


def test_overrides_per_variant_are_checked():
    cfg = TrainConfig(steps=10, overrides={"a": {"steps": 3, "features": 4}})
    assert cfg.for_variant("a").steps == 3 and cfg.for_variant("a").features == 4
    assert cfg.for_variant("b") == dataclasses.replace(cfg, overrides={})
    with pytest.raises(ConfigError, match=r"train\.overrides\.a\.stepz"):
        TrainConfig(overrides={"a": {"stepz": 3}})
    with pytest.raises(ConfigError, match=r"train\.overrides\.teeth_sqaure"):   # a typo of a variant's name
        TrainConfig(overrides={"teeth_sqaure": {"steps": 3}}).for_variant("teeth_square", ["full_16x9", "teeth_square"])
    with pytest.raises(ValueError):
        TrainConfig(diffaugment="translation,colour")
    with pytest.raises(ConfigError, match=r"train.cpu_threads: -1 is out of range \(allowed: >= 0\)"):
        build(TrainConfig, {"cpu_threads": -1}, "train")
    with pytest.raises(ConfigError, match=r"train.overrides.a.steps: 0 is out of range"):
        TrainConfig(overrides={"a": {"steps": 0}}).for_variant("a")


def test_trainset_reads_train_rows_and_rejects_bad_files(dataset, tmp_path):
    images, split = dataset
    data, ids = load_train_images(images, split, H, W)
    assert data.shape == (12, 1, H, W) and len(ids) == 12 and "ffffffffffffff01" not in ids
    assert data.min() >= -1 and data.max() <= 1 and data.max() > 0.9
    with pytest.raises(ValueError, match="not 32x16|not"):
        load_train_images(images, split, H, W + 2)
    (images / f"{0:016x}.png").unlink()
    with pytest.raises(FileNotFoundError, match="missing"):
        load_train_images(images, split, H, W)


DDP_SCRIPT = """
import json, os, sys
from pathlib import Path
from pipeline.gan.train import TrainConfig, train
images, split, out, steps = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
stop = int(sys.argv[5]) if len(sys.argv) > 5 else None
r = train(TrainConfig(steps=steps, **{tiny!r}), "v", {h}, {w}, 123, images, split, out, progress=False,
          stop_after=stop)
(out / f"result_{{os.environ['RANK']}}.json").write_text(json.dumps(r))   # stdout interleaves
"""


EXEC = "import sys; from pipeline.gan import launch; launch.exec_torchrun(int(sys.argv[1]), sys.argv[2:])"


def torchrun(tmp_path, dataset, out, repo_root, *args, nproc=2) -> list[dict]:
    """``nproc`` gloo processes of the library on ``dataset`` into ``out``, started as the train
    stage starts them (a process that execs torchrun: launch.exec_torchrun); each rank's summary."""
    script = tmp_path / "ddp_train.py"
    script.write_text(DDP_SCRIPT.format(tiny=TINY, h=H, w=W))
    env = {**os.environ, "PYTHONPATH": str(repo_root), "OMP_NUM_THREADS": "1"}
    argv = [sys.executable, "-c", EXEC, str(nproc), str(script), *map(str, dataset), str(out), *map(str, args)]
    r = subprocess.run(argv, cwd=repo_root, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert f"[train] {nproc} processes:" in r.stdout
    return [json.loads((out / f"result_{rank}.json").read_text()) for rank in range(nproc)]


def _logged_steps(out: Path) -> list[int]:
    header, *rows = (out / "live" / "plots" / "metrics" / "loss_d.tsv").read_text().split("\n")
    col = header.split("\t").index("step")
    return [int(r.split("\t")[col]) for r in rows if r]


@pytest.mark.slow
def test_a_torchrun_run_is_resumed_by_one_process_and_never_deleted(dataset, tmp_path, repo_root):
    """2 gloo processes (killed after step 3, checkpoint at 2), then one process as `dvc repro`
    runs the stage: it resumes (RNG streams re-seeded by the recorded rule) and finishes; run
    again, the finished run is neither deleted nor retrained."""
    out = tmp_path / "ddp"
    for rank, result in enumerate(torchrun(tmp_path, dataset, out, repo_root, 6, 3)):
        assert (result["world"], result["step"], result["finished"]) == (2, 3, False), rank
    state = torch.load(out / "checkpoints" / "step_0000002.pt", weights_only=True)
    assert state["world"] == 2 and len(state["rng"]) == 2 and state["device"] == "cpu"
    assert not torch.equal(state["rng"][0]["data"], state["rng"][1]["data"])   # the ranks draw their own batches
    one = run(TrainConfig(steps=6, **TINY), out, dataset)
    assert (one["world"], one["resumed_from"], one["rng_on_resume"], one["finished"]) == (1, 2, "reseeded", True)
    last = torch.load(out / "checkpoints" / "step_0000006.pt", weights_only=True)
    assert last["world"] == 1 and last["resumes"] == [
        {"step": 2, "from_world": 2, "world": 1, "from_device": "cpu", "device": "cpu", "rng": "reseeded"}]
    assert _logged_steps(out) == [2, 4, 6]            # the torchrun run's log kept, its lost step 3 trimmed
    exported = (out / "generator.pt").read_bytes()
    again = run(TrainConfig(steps=6, **TINY), out, dataset)
    assert (again["resumed_from"], again["step"], again["finished"]) == (6, 6, True)
    assert (out / "generator.pt").read_bytes() == exported and _logged_steps(out) == [2, 4, 6]
    gen, info = load_generator(out / "generator.pt")
    assert info["step"] == 6 and gen(torch.randn(2, gen.z_dim)).shape == (2, 1, H, W)


@pytest.mark.slow
def test_a_cpu_checkpoint_resumes_with_two_processes(dataset, tmp_path, repo_root):
    out = tmp_path / "m"
    first = run(TrainConfig(steps=2, **TINY), out, dataset)
    assert first["finished"] and first["world"] == 1
    for rank, result in enumerate(torchrun(tmp_path, dataset, out, repo_root, 4)):
        assert (result["world"], result["resumed_from"], result["step"], result["finished"]) == (2, 2, 4, True), rank
        assert result["rng_on_resume"] == "reseeded"
    state = torch.load(out / "checkpoints" / "step_0000004.pt", weights_only=True)
    assert state["world"] == 2 and [r["from_world"] for r in state["resumes"]] == [1]
    assert _logged_steps(out) == [2, 4]
    _, info = load_generator(out / "generator.pt")
    assert info["step"] == 4


def test_the_gpu_settings_run_on_the_cpu_too(dataset, tmp_path):
    """bf16 autocast + channels_last (the CUDA defaults) through the same loop: finite losses, an
    fp32 export, and still resumable."""
    cfg = TrainConfig(steps=3, amp="bf16", channels_last="on", **TINY)
    result = run(cfg, tmp_path / "m", dataset)
    assert result["amp_bf16"] and result["channels_last"] and result["finished"]
    assert all(np.isfinite(result[k]) for k in ("loss_d", "loss_g", "wasserstein", "gp"))
    gen, _ = load_generator(tmp_path / "m" / "generator.pt")
    assert all(p.dtype == torch.float32 for p in gen.parameters())
    assert torch.isfinite(gen(torch.randn(2, gen.z_dim))).all()


def test_the_per_pixel_layout_learns_at_layout_lr(dataset, tmp_path):
    """The generator's offset and basis are stepped at train.layout_lr x lr, every other weight at lr:
    after a few steps they have moved about that much less per step."""
    from pipeline.gan.runtime import setup
    from pipeline.gan.train import _build_nets

    cfg = TrainConfig(steps=1, layout_lr=0.01, lr=1e-3)
    data = torch.rand(8, 1, 36, 64) * 2 - 1
    nets = _build_nets(cfg, 36, 64, 3, setup("cpu", "off", "off", 1), data)
    groups = nets.opt_g.param_groups
    names = {id(p): n for n, p in nets.G.named_parameters()}
    assert [g["lr"] for g in groups] == [1e-3, 1e-5]
    assert sorted(names[id(p)] for p in groups[1]["params"]) == ["basis", "offset"]
    before = {n: p.detach().clone() for n, p in nets.G.named_parameters()}
    for _ in range(3):
        nets.opt_g.zero_grad()
        nets.G(torch.randn(4, cfg.z_dim)).pow(2).mean().backward()
        nets.opt_g.step()
    moved = {n: (p.detach() - before[n]).abs().max().item() for n, p in nets.G.named_parameters()}
    # Adam (beta1 0, beta2 0.9) moves a weight by at most lr / sqrt(1 - 0.9) = 3.2 lr a step
    assert moved["offset"] <= 3 * 3.2 * 1e-5 and moved["basis"] <= 3 * 3.2 * 1e-5
    assert moved["fc.weight"] >= 1e-3


def test_a_non_finite_state_is_never_saved(dataset, tmp_path):
    """A NaN between two log steps (checkpoint_every not a multiple of log_every), here in the EMA
    generator, which no loss reads: the checkpoint step refuses to write it, so no later run can
    resume (or export) a poisoned state."""
    out = tmp_path / "m"
    cfg = TrainConfig(steps=4, **{**TINY, "checkpoint_every": 1, "log_every": 100})

    def on_step(step, ema_model):
        if step == 1:
            with torch.no_grad():
                for p in ema_model.parameters():
                    p.fill_(float("nan"))
        return False

    with pytest.raises(FloatingPointError, match="non-finite .*step 2"):
        run(cfg, out, dataset, on_step=on_step, live=False)
    assert [s for s, _ in checkpoints(out / "checkpoints")] == [1]
    state = torch.load(out / "checkpoints" / "step_0000001.pt", weights_only=True)
    assert all(torch.isfinite(v).all() for v in state["ema"]["model"].values() if v.is_floating_point())


def test_a_second_run_into_the_same_folder_is_refused(dataset, tmp_path):
    """A run still holding models/V (another `dvc repro`, orphaned workers of a killed one) keeps
    the folder: a second run stops before touching it, and runs once the holder is gone."""
    import fcntl

    out = tmp_path / "m"
    out.mkdir()
    (out / "generator.pt").write_bytes(b"the other run's")
    holder = os.open(out, os.O_RDONLY)
    fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        with pytest.raises(RuntimeError, match="another training run holds"):
            run(TrainConfig(steps=1, **TINY), out, dataset, live=False)
        assert (out / "generator.pt").read_bytes() == b"the other run's" and not (out / "checkpoints").exists()
    finally:
        os.close(holder)                                   # the holder dies: its lock goes with it
    assert run(TrainConfig(steps=1, **TINY), out, dataset, live=False)["finished"]


def test_a_host_train_set_is_never_pinned_whole(monkeypatch):
    """Too big for the GPU, the train set stays in pageable memory (the pinned allocator would round
    9 GB up to 16 GB per rank); batches still go through a pinned buffer."""
    from pipeline.gan.runtime import Runtime
    from pipeline.gan.train import Batches, place_train_set

    def no_pinning(self, *a, **k):
        raise AssertionError("the whole train set was pinned")

    monkeypatch.setattr(torch.Tensor, "pin_memory", no_pinning)
    cuda = Runtime(torch.device("cuda", 0), 0, 1, False, False)   # a device object; nothing runs on it
    data = torch.zeros(6, 1, 4, 4)
    assert place_train_set(data, cuda, on_device_gb=0.0) is data
    assert place_train_set(data, Runtime(torch.device("cpu"), 0, 1, False, False), on_device_gb=8.0) is data
    batches = Batches(data, 2, torch.Generator(), False, cuda)
    assert batches.pinned                                  # pageable source, pinned batch buffer


def test_critic_concat_trains_as_the_two_forwards_do(dataset, tmp_path):
    """The speed option (real and fake through the critic in one forward): the same losses as the
    default two forwards, to float rounding, after a few steps."""
    a = run(TrainConfig(steps=2, **TINY), tmp_path / "two", dataset, live=False)
    b = run(TrainConfig(steps=2, critic_concat=True, **TINY), tmp_path / "one", dataset, live=False)
    for key in ("loss_d", "loss_g", "wasserstein", "gp"):
        assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-5), key
