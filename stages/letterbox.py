"""DVC stage `letterbox@V`: `python -m stages.letterbox V` -> data/variants/V/ (images, transforms.csv)."""

from pipeline.core import cli, config
from pipeline.core.layout import Layout
from pipeline.variants.letterbox import LetterboxConfig, run_letterbox


def main(params: dict, name: str) -> None:
    variant = config.variant(name, params)
    cfg = config.stage_config("letterbox", LetterboxConfig, params)
    lay = Layout()
    rows = run_letterbox(name, variant, cfg, lay.audit, lay.crops, lay.variants)
    print(f"letterbox {name}: {len(rows)} images at {variant.height}x{variant.width} ({variant.mode}, {variant.source})")


if __name__ == "__main__":
    cli.run(main, variant=True)
