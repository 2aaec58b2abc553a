"""DVC stage `ingest`: params.yaml `ingest` -> data/ingested/ (images/*.png, manifest.csv)."""
from pathlib import Path

from pipeline import config
from pipeline.ingest import IngestConfig, run_ingest, summarise


def main() -> None:
    cfg = config.stage_config("ingest", IngestConfig)
    rows = run_ingest(cfg, Path("data/ingested"))
    print(summarise(rows))


if __name__ == "__main__":
    main()
