"""DVC stage `train@V`: params.yaml `train` (+ `train.overrides.V`), `variants.V`, `seed` ->
models/V/ (checkpoints, generator.pt, live/). With `train.gpus` resolving to N > 1 processes, this
process becomes `torchrun --standalone --nproc_per_node=N -m stages.train V` (pipeline.gan.launch)."""
import json
import os

from pipeline.core import cli, config
from pipeline.core.layout import Layout
from pipeline.gan import launch
from pipeline.gan.train import TrainConfig, train


def main(params: dict, name: str) -> None:
    variant = config.variant(name, params)
    cfg = config.stage_config("train", TrainConfig, params).for_variant(name, config.variants(params))
    if not launch.under_torchrun():
        nproc = launch.processes(cfg.gpus, cfg.device, batch=cfg.batch)
        if nproc > 1:
            launch.exec_torchrun(nproc, ["-m", "stages.train", name])
    lay = Layout()
    result = train(cfg, name, variant.height, variant.width, config.seed(params),
                   lay.variant(name) / "images", lay.split_csv, lay.model(name))
    if result.get("world", 1) == 1 or os.environ.get("RANK", "0") == "0":
        print(json.dumps(result, indent=1))


if __name__ == "__main__":
    cli.run(main, variant=True)
