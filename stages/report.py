"""DVC stage `report`: reports/metrics.json, data/eval, images, models/*/live, reports/audit.json -> reports/quality.html."""
from pipeline.core import cli
from pipeline.core.layout import Layout
from pipeline.metrics.quality_report import write_report


def main(params: dict) -> None:
    layout = Layout()
    out = write_report(layout, layout.reports / "quality.html")
    print(f"report -> {out}")


if __name__ == "__main__":
    cli.run(main)
