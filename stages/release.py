"""DVC stage `release`: params `release` -> data/release/<name>-<version>/ (+ .tar.gz), then verify it."""
import subprocess
import sys
from pathlib import Path

from pipeline import config
from pipeline.release import Provenance, ReleaseConfig, build_release, read_lock
from pipeline.verify_release import verify


def code_commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, check=True).stdout.strip()
        return sha + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"


def main() -> int:
    params = config.load_params()
    cfg = config.stage_config("release", ReleaseConfig, params)
    bag = build_release(cfg, Path("data/synthetic"), Path("data/eval/nearest.csv"), Path("reports/metrics.json"),
                        Path("data/release"), Provenance(code_commit(), read_lock(Path("dvc.lock"))),
                        {"variants": params.get("variants", {})})
    problems = verify(bag) + verify(bag.with_name(bag.name + ".tar.gz"))
    for p in problems:
        print(f"  - {p}", file=sys.stderr)
    print(f"release {bag}: {'verifies' if not problems else 'FAILED verification'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
