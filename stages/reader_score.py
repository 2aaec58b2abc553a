"""DVC stage `reader_score` (also `dentsynth-reader-score`): reports/reader_study/answers/*.csv|json +
data/reader_study/key.csv -> reports/reader_study/scores.json, per_reader.csv, per_image.csv."""
from pipeline.core import cli
from pipeline.core.layout import Layout
from pipeline.reader.score import run_score, summary_line


def main(params: dict) -> None:
    scores = run_score(Layout())
    print(summary_line(scores))
    for r in scores["rejected"]:
        print(f"  rejected {r['file']} row {r['row']}: {r['reason']}")


def entry() -> None:
    """The console script `dentsynth-reader-score` (run it in the project root)."""
    cli.run(main)


if __name__ == "__main__":
    cli.run(main)
