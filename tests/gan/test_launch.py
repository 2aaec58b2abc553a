"""train.gpus -> processes, and the train stage becoming torchrun (exec) when that is above 1."""
from __future__ import annotations

import pytest

from pipeline.core.config import ConfigError, load_params
from pipeline.gan import launch


def test_processes_per_gpus_and_device():
    assert launch.processes("auto", "auto", visible=4, batch=8) == 4
    assert launch.processes("auto", "cuda", visible=1, batch=8) == 1
    assert launch.processes(2, "auto", visible=4, batch=8) == 2
    assert launch.processes(0, "auto", visible=4, batch=8) == launch.processes(1, "auto", visible=4, batch=8) == 1
    assert launch.processes("auto", "cpu", visible=4, batch=8) == 1 == launch.processes(8, "cpu", visible=4, batch=8)
    assert launch.processes("auto", "auto", visible=0, batch=8) == 1 == launch.processes(3, "auto", visible=0, batch=8)
    with pytest.raises(ConfigError, match="train.gpus is 3 but 2 GPU"):
        launch.processes(3, "auto", visible=2, batch=8)
    with pytest.raises(RuntimeError, match="no CUDA device"):
        launch.processes("auto", "cuda", visible=0, batch=8)


def test_torchrun_argv_and_environment(monkeypatch):
    argv = launch.torchrun_argv(3, ["-m", "stages.train", "v"])
    assert argv[1:] == ["-m", "torch.distributed.run", "--standalone", "--nnodes=1", "--nproc_per_node=3",
                        "-m", "stages.train", "v"]
    for key in launch.TORCHRUN_ENV:
        monkeypatch.delenv(key, raising=False)
    assert not launch.under_torchrun()
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert launch.under_torchrun()


class Exec(Exception):
    pass


@pytest.mark.parametrize("inside", [False, True])
def test_the_stage_execs_torchrun_only_outside_it(inside, monkeypatch, repo_root):
    from stages import train as stage

    calls = []

    def fake_exec(nproc, args):
        calls.append((nproc, args))
        raise Exec

    monkeypatch.setattr(launch, "processes", lambda gpus, device, batch: 2)
    monkeypatch.setattr(launch, "exec_torchrun", fake_exec)
    monkeypatch.setattr(stage, "train", lambda *a, **k: calls.append("train") or {"world": 2})
    for key in launch.TORCHRUN_ENV:
        monkeypatch.delenv(key, raising=False)
    if inside:
        monkeypatch.setenv("LOCAL_RANK", "1")
        monkeypatch.setenv("RANK", "1")
    params = load_params(repo_root / "params.yaml")
    name = sorted(params["variants"])[0]
    if inside:
        stage.main(params, name)
        assert calls == ["train"]
    else:
        with pytest.raises(Exec):
            stage.main(params, name)
        assert calls == [(2, ["-m", "stages.train", name])]


def test_gpus_auto_launches_a_divisor_of_the_batch_and_says_so(capsys):
    """batch 8 on 3, 5, 6, 7 or more than 8 GPUs: every rank would raise after the exec."""
    for visible, n in ((8, 8), (3, 2), (5, 4), (6, 4), (7, 4), (12, 8), (16, 8)):
        assert launch.processes("auto", "auto", visible=visible, batch=8) == n, visible
        said = capsys.readouterr().out
        assert (f"{n} of the {visible} visible GPUs" in said) == (n < visible), said
    assert launch.processes("auto", "auto", visible=3, batch=9) == 3
    assert launch.processes(4, "auto", visible=8, batch=8) == 4
    with pytest.raises(ConfigError, match="train.gpus is 3 but the global train.batch 8 is not divisible"):
        launch.processes(3, "auto", visible=4, batch=8)


def test_the_stage_checks_the_batch_before_any_exec(monkeypatch, repo_root, capsys):
    from stages import train as stage

    execs = []
    monkeypatch.setattr(launch.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(launch.torch.cuda, "device_count", lambda: 6)
    monkeypatch.setattr(launch, "exec_torchrun", lambda nproc, args: execs.append(nproc) or (_ for _ in ()).throw(Exec()))
    for key in launch.TORCHRUN_ENV:
        monkeypatch.delenv(key, raising=False)
    params = load_params(repo_root / "params.yaml")
    params["train"] = {**params["train"], "batch": 8, "gpus": "auto", "device": "auto"}
    name = sorted(params["variants"])[0]
    params["train"]["overrides"] = {}
    with pytest.raises(Exec):
        stage.main(params, name)
    assert execs == [4] and "4 of the 6 visible GPUs" in capsys.readouterr().out
    params["train"]["gpus"] = 3
    with pytest.raises(ConfigError, match="not divisible"):
        stage.main(params, name)
    assert execs == [4]
