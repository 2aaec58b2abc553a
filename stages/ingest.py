"""DVC stage `ingest`: params.yaml `ingest` -> data/ingested/ (images/*.png, manifest.csv).

Its DVC input is data/ingest_inventory.json (stage `inventory`), not the archive folder; after the
run the archive is checked against that inventory, so an archive that changed meanwhile fails the
stage (DVC then records nothing, and the next `dvc repro` runs both again)."""
import sys

from pipeline.core import cli, config
from pipeline.core.layout import Layout
from pipeline.ingest.ingest import IngestConfig, archive_changed, run_ingest, summarise


def main(params: dict) -> int:
    cfg = config.stage_config("ingest", IngestConfig, params)
    lay = Layout()
    rows = run_ingest(cfg, lay.ingested)
    print(summarise(rows))
    if archive_changed(cfg, lay.inventory):
        print("the archive changed since stage inventory looked at it: run `dvc repro` again", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    cli.run(main)
