"""DVC stage `report`: reports/metrics.json, data/eval, images, models/*/live, reports/audit.json -> reports/quality.html."""
from pathlib import Path

from pipeline.quality_report import write_report


def main() -> None:
    out = write_report(Path("reports/metrics.json"), Path("reports/quality.html"), Path("."),
                       Path("data/eval/nearest.csv"), Path("reports/audit.json"))
    print(f"report -> {out}")


if __name__ == "__main__":
    main()
