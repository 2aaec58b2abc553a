"""DVC stage `release`: params `release` -> data/release/<name>-<version>/ (+ .tar.gz), then verify it."""
import sys

from pipeline.core import cli, config
from pipeline.core.layout import Layout
from pipeline.release.provenance import Provenance, code_commit, read_lock
from pipeline.release.release import ReleaseConfig, build_release
from pipeline.release.verify_release import verify


def main(params: dict) -> int:
    cfg = config.stage_config("release", ReleaseConfig, params)
    lay = Layout()
    bag = build_release(cfg, lay.synthetic(), lay.nearest_csv, lay.metrics_json, lay.release,
                        Provenance(code_commit(), read_lock(lay.lock)),
                        {"variants": params.get("variants", {})})
    problems = verify(bag) + verify(bag.with_name(bag.name + ".tar.gz"))
    for p in problems:
        print(f"  - {p}", file=sys.stderr)
    print(f"release {bag}: {'verifies' if not problems else 'FAILED verification'}")
    return 1 if problems else 0


if __name__ == "__main__":
    cli.run(main)
