"""DVC stage `generate@V`: params `generate`, `train_sr.tile`, `variants.V`; models/V/generator.pt
(+ models/V/sr/ when `variants.V.sr_scale` is on) -> data/synthetic/V/."""

from pipeline.core import cli, config
from pipeline.core.layout import Layout
from pipeline.gan.generate import GenerateConfig, generate
from pipeline.sr.deliver import generate_full_size
from pipeline.sr.train import SRConfig


def main(params: dict, variant: str) -> None:
    cfg = config.stage_config("generate", GenerateConfig, params)
    v = config.variant(variant, params)
    lay = Layout()
    if v.sr_scale:
        tile = config.build(SRConfig, {"tile": params["train_sr"]["tile"]}, "train_sr").tile   # its one train_sr key
        rows = generate_full_size(cfg, variant, lay.model(variant) / "generator.pt", lay.sr_model(variant) / "sr.pt",
                                  lay.synthetic(variant), tile, v.height, v.width)
    else:
        rows = generate(cfg, variant, lay.model(variant) / "generator.pt", lay.synthetic(variant), v.height, v.width)
    print(f"generate {variant}: {len(rows)} images at {'x'.join(map(str, v.delivered))} -> {lay.synthetic(variant)}")


if __name__ == "__main__":
    cli.run(main, variant=True)
