"""DVC stage `split`: params `split` + `seed` + data/audit/kept.csv -> data/split/split.csv."""

from pipeline.core import cli, config
from pipeline.core.layout import Layout
from pipeline.variants.split import SplitConfig, run_split, summarise


def main(params: dict) -> None:
    cfg = config.stage_config("split", SplitConfig, params)
    lay = Layout()
    rows = run_split(cfg, config.seed(params), lay.kept_csv, lay.split)
    print(summarise(rows))


if __name__ == "__main__":
    cli.run(main)
