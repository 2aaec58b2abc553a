"""DVC stage `split`: params `split` + `seed` + data/audit/kept.csv -> data/split/split.csv."""
from pathlib import Path

from pipeline import config
from pipeline.split import SplitConfig, run_split, summarise


def main() -> None:
    params = config.load_params()
    cfg = config.stage_config("split", SplitConfig, params)
    rows = run_split(cfg, config.seed(params), Path("data/audit/kept.csv"), Path("data/split"))
    print(summarise(rows))


if __name__ == "__main__":
    main()
