"""DVC stage `crop`: params `crop` + data/audit + data/ingested/manifest.csv -> data/crops/, reports/crops.html."""

from pipeline.core import cli, config
from pipeline.core.layout import Layout
from pipeline.crop.config import CropConfig
from pipeline.crop.crop import run_crop, summarise


def main(params: dict) -> None:
    cfg = config.stage_config("crop", CropConfig, params)
    lay = Layout()
    rows = run_crop(cfg, lay.audit, lay.ingested_manifest, lay.crops, lay.crops_report)
    print(summarise(rows))


if __name__ == "__main__":
    cli.run(main)
