"""DVC stage `crop`: params `crop` + data/audit + data/ingested/manifest.csv -> data/crops/, reports/crops.html."""
from pathlib import Path

from pipeline.core import cli, config
from pipeline.crop.crop import CropConfig, run_crop, summarise


def main(params: dict) -> None:
    cfg = config.stage_config("crop", CropConfig, params)
    rows = run_crop(cfg, Path("data/audit"), Path("data/ingested/manifest.csv"), Path("data/crops"),
                    Path("reports/crops.html"))
    print(summarise(rows))


if __name__ == "__main__":
    cli.run(main)
