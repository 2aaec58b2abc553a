"""Verify a received release: `python -m stages.verify_release PATH` (folder or .tar.gz).

Exit 0 when every checksum matches, manifest.csv agrees with the files and the dataset card is
present; otherwise exit 1 and print each problem with the file it concerns.
"""
import argparse
import sys

from pipeline.release.verify_release import verify


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("path", help="release folder (data/release/<name>-<version>) or its .tar.gz")
    args = ap.parse_args(argv)
    problems = verify(args.path)
    if problems:
        print(f"FAILED: {args.path}: {len(problems)} problem(s)", file=sys.stderr)
        for p in problems:
            print(f"  - {p}", file=sys.stderr)
        return 1
    print(f"OK: {args.path} verifies (checksums, manifest, dataset card)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
