"""DVC stage `train_sr@V`: params.yaml `train_sr` (+ `train_sr.overrides.V`), `variants.V`, `seed` ->
models/V/sr/ (sr.pt, checkpoint.pt, metrics.json); with `variants.V.sr_scale: 0` only off.json."""
import json

from pipeline.core import cli, config
from pipeline.core.layout import Layout
from pipeline.sr.stage import run_train_sr
from pipeline.sr.train import SRConfig


def main(params: dict, name: str) -> None:
    variant = config.variant(name, params)
    cfg = config.stage_config("train_sr", SRConfig, params).for_variant(name, config.variants(params))
    result = run_train_sr(cfg, name, variant, config.seed(params), Layout())
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    cli.run(main, variant=True)
