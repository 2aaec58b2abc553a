"""DVC stage `reader_study`: params `reader_study`, `seed`, a variant's held-out real and synthetic images ->
reports/reader_study/<name>.html (the page readers take) + data/reader_study/ (its key and passphrase)."""
from pipeline.core import cli, config
from pipeline.core.layout import Layout
from pipeline.reader.study import ReaderStudyConfig, StudyError, write_study


def main(params: dict) -> int:
    cfg = config.stage_config("reader_study", ReaderStudyConfig, params)
    config.variant(cfg.variant, params)   # an unknown variant is a params error
    layout = Layout()
    try:
        meta = write_study(cfg, config.seed(params), layout)
    except StudyError as e:
        print(f"reader_study: {e}")
        return 1
    n = meta["images_per_class"]
    print(f"reader study -> {layout.reader_study_reports / (cfg.name + '.html')}: {n} real + {n} synthetic "
          f"({cfg.variant}); key and passphrase in {layout.reader_study_key}/ (the page shows patients: "
          "it must not leave the institute)")
    return 0


if __name__ == "__main__":
    cli.run(main)
