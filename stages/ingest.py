"""DVC stage `ingest`: params.yaml `ingest` -> data/ingested/ (images/*.png, manifest.csv)."""
from pathlib import Path

from pipeline.core import cli, config
from pipeline.ingest.ingest import IngestConfig, run_ingest, summarise


def main(params: dict) -> None:
    cfg = config.stage_config("ingest", IngestConfig, params)
    rows = run_ingest(cfg, Path("data/ingested"))
    print(summarise(rows))


if __name__ == "__main__":
    cli.run(main)
