"""DVC stage `letterbox@V`: `python -m stages.letterbox V` -> data/variants/V/ (images, transforms.csv)."""
import sys
from pathlib import Path

from pipeline import config
from pipeline.letterbox import LetterboxConfig, run_letterbox


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m stages.letterbox VARIANT")
    name = sys.argv[1]
    params = config.load_params()
    variant = config.variant(name, params)
    cfg = config.stage_config("letterbox", LetterboxConfig, params)
    rows = run_letterbox(name, variant, cfg, Path("data/audit"), Path("data/crops"), Path("data/variants"))
    print(f"letterbox {name}: {len(rows)} images at {variant.height}x{variant.width} ({variant.mode}, {variant.source})")


if __name__ == "__main__":
    main()
