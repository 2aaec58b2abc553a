"""DVC stage `split`: params `split` + `seed` + data/audit/kept.csv -> data/split/split.csv."""
from pathlib import Path

from pipeline.core import cli, config
from pipeline.variants.split import SplitConfig, run_split, summarise


def main(params: dict) -> None:
    cfg = config.stage_config("split", SplitConfig, params)
    rows = run_split(cfg, config.seed(params), Path("data/audit/kept.csv"), Path("data/split"))
    print(summarise(rows))


if __name__ == "__main__":
    cli.run(main)
