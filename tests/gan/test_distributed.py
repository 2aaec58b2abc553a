"""Two gloo processes on the CPU (tests.gan.ddp): the generator's BatchNorm sees the global batch
(the maths does not depend on the process count beyond float rounding), the ranks' buffers and EMA
agree and the replica check compares buffers too, rank 0 decides the resume, and the process group
ends with the run."""
from __future__ import annotations

import json

import pytest
import torch

from pipeline.gan import runtime
from tests.gan import ddp_workers
from tests.gan.ddp import run_ranks
from tests.gan.ddp_workers import H, TINY, W


def test_two_processes_compute_what_one_does(tmp_path):
    """One generator step on 2 ranks x 2 images equals one process on the 4: outputs, averaged
    gradients and BatchNorm running statistics, to float rounding; then a buffer that differs on one
    rank fails check_replicas (it compared parameter sums only)."""
    run_ranks("bn_step", tmp_path)
    ranks = [torch.load(tmp_path / f"bn_rank{r}.pt", weights_only=True) for r in range(2)]
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        G = ddp_workers.tiny_generator().train()
        z, weights = ddp_workers.global_batch()
        y = G(z)
        (y * weights).mean().backward()
    finally:
        torch.set_num_threads(before)
    for r, found in enumerate(ranks):
        assert torch.allclose(found["y"], y.detach()[2 * r:2 * r + 2], rtol=0, atol=1e-5), r
        for name, p in G.named_parameters():
            assert torch.allclose(found["grads"][name], p.grad, rtol=1e-4, atol=1e-7), (r, name)
        for name, b in G.named_buffers():
            assert torch.allclose(found["buffers"][name].double(), b.double(), rtol=1e-5, atol=1e-6), (r, name)
    for name in ranks[0]["buffers"]:
        assert torch.equal(ranks[0]["buffers"][name], ranks[1]["buffers"][name]), name   # identical on the ranks
    assert all("out_bn.running_mean" in found["caught"] for found in ranks), [f["caught"] for f in ranks]


@pytest.mark.slow
def test_the_ranks_export_one_ema_generator_and_end_their_group(tmp_path):
    """3 steps of the trainer on 2 ranks: the EMA generator (weights and BatchNorm statistics) is the
    same on both, the replica check (buffers included) passes, and no process group outlives train()."""
    run_ranks("train_run", tmp_path, "3")
    emas = [torch.load(tmp_path / f"ema_rank{r}.pt", weights_only=True) for r in range(2)]
    assert emas[0].keys() == emas[1].keys() and any("running_var" in k for k in emas[0])
    for k in emas[0]:
        assert torch.equal(emas[0][k], emas[1][k]), k
    for r in range(2):
        result = json.loads((tmp_path / f"result_rank{r}.json").read_text())
        assert (result["world"], result["step"], result["finished"]) == (2, 3, True)
        assert result["group_up_after"] is False, r


@pytest.mark.slow
def test_rank_0_decides_the_resume_for_every_rank(tmp_path):
    """Checkpoints at steps 2 and 4 from a one-process run; rank 1 sees a stale folder (step 2 only):
    both ranks resume from step 4, the one rank 0 chose (each rank picked its own before)."""
    from pipeline.gan.train import TrainConfig, checkpoints, train

    images = torch.rand(12, 1, H, W, generator=torch.Generator().manual_seed(0)) * 2 - 1
    before = torch.get_num_threads()
    try:
        train(TrainConfig(steps=4, **TINY), "v", H, W, 123, "", "", tmp_path / "m", progress=False, live=False,
              images=images, threads=1)
    finally:
        torch.set_num_threads(before)
    assert [s for s, _ in checkpoints(tmp_path / "m" / "checkpoints")] == [2, 4]
    run_ranks("stale_resume", tmp_path, "6", timeout=150)
    for r in range(2):
        result = json.loads((tmp_path / f"result_rank{r}.json").read_text())
        assert (result["resumed_from"], result["step"], result["finished"]) == (4, 6, True), (r, result)


