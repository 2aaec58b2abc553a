"""DVC stage `inventory` (always changed): the archive at `ingest.raw_dir` -> data/ingest_inventory.json.

Entry counts and one digest of the listing (no file names), so that `ingest` reruns exactly when
the archive changed, without DVC hashing the archive itself (it cannot hash dangling links, link
loops or non-UTF-8 names: see pipeline/ingest/ingest.py)."""

from pipeline.core import cli, config
from pipeline.core.layout import Layout
from pipeline.ingest.ingest import IngestConfig, inventory_cache, write_inventory


def main(params: dict) -> None:
    cfg = config.stage_config("ingest", IngestConfig, params)
    inv = write_inventory(cfg, Layout().inventory, cache=inventory_cache())
    print(f"{inv['entries']} archive entries ({inv['files']} files, {inv['other_entries']} other)")


if __name__ == "__main__":
    cli.run(main)
