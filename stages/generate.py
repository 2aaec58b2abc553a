"""DVC stage `generate@V`: params `generate` + `variants.V`, models/V/generator.pt -> data/synthetic/V/."""

from pipeline.core import cli, config
from pipeline.core.layout import Layout
from pipeline.gan.generate import GenerateConfig, generate


def main(params: dict, variant: str) -> None:
    cfg = config.stage_config("generate", GenerateConfig, params)
    v = config.variant(variant, params)
    lay = Layout()
    rows = generate(cfg, variant, lay.model(variant) / "generator.pt", lay.synthetic(variant), v.height, v.width)
    print(f"generate {variant}: {len(rows)} images -> {lay.synthetic(variant)}")


if __name__ == "__main__":
    cli.run(main, variant=True)
