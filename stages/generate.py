"""DVC stage `generate@V`: params `generate` + `variants.V`, models/V/generator.pt -> data/synthetic/V/."""
from pathlib import Path

from pipeline.core import cli, config
from pipeline.gan.generate import GenerateConfig, generate


def main(params: dict, variant: str) -> None:
    cfg = config.stage_config("generate", GenerateConfig, params)
    v = config.variant(variant, params)
    rows = generate(cfg, variant, Path("models") / variant / "generator.pt", Path("data/synthetic") / variant,
                    v.height, v.width)
    print(f"generate {variant}: {len(rows)} images -> data/synthetic/{variant}")


if __name__ == "__main__":
    cli.run(main, variant=True)
