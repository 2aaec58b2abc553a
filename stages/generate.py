"""DVC stage `generate@V`: params `generate` + `variants.V`, models/V/generator.pt -> data/synthetic/V/."""
import sys
from pathlib import Path

from pipeline import config
from pipeline.generate import GenerateConfig, generate


def main(variant: str) -> None:
    cfg = config.stage_config("generate", GenerateConfig)
    v = config.variant(variant)
    rows = generate(cfg, variant, Path("models") / variant / "generator.pt", Path("data/synthetic") / variant,
                    v.height, v.width)
    print(f"generate {variant}: {len(rows)} images -> data/synthetic/{variant}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m stages.generate VARIANT")
    main(sys.argv[1])
