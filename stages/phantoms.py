"""DVC stage `phantoms`: params `phantoms` + `seed` -> data/demo_raw/ (the built-in demo archive)."""

from pipeline.core import cli, config
from pipeline.core.layout import Layout
from pipeline.demo.phantoms import PhantomsConfig, build_archive


def main(params: dict) -> None:
    cfg = config.stage_config("phantoms", PhantomsConfig, params)
    out = build_archive(Layout().demo_raw, cfg, config.seed(params))
    n = sum(1 for p in out.rglob("*") if p.is_file())
    print(f"demo archive: {n} files in {out} ({cfg.width}x{cfg.height}, {cfg.n_clean} clean, "
          f"{cfg.n_per_defect} per defect type)")


if __name__ == "__main__":
    cli.run(main)
