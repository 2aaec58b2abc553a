"""Which stages of a run reproduced a committed `dvc.lock`: per stage, whether its inputs (the hash of
every dependency and the value of every declared param) and its outputs are the same in both.

    python -m bench.lock_diff dvc.lock /tmp/fresh1/dvc.lock            # committed vs a fresh clone's
    python -m bench.lock_diff dvc.lock /tmp/fresh1/dvc.lock --check    # exit 1 when a stage that must reproduce did not

The promise (README, "Reproducibility"; docs/reproducibility.md):
- a stage that is not downstream of training (`phantoms` through `split`) reproduces its inputs and its
  outputs byte for byte on any machine, from the committed code, params and requirements.lock;
- every other stage reproduces its outputs whenever its inputs are the same (the same generator gives
  the same `generate` and `evaluate`); the training stages reproduce on the same kind of machine;
- except the outputs listed in `VARYING`, each with why (a measured speed, a secret drawn by the OS).
"""
from __future__ import annotations

import argparse
import fnmatch
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

# stages whose result depends on the machine's floating point (thread count, CPU kind): they, and
# what follows from them, reproduce only where the machine does; every earlier stage must anywhere
MACHINE_DEPENDENT = ("train@*",)
# the committed dvc.lock was made on the kind of machine the tests run on (2 cores, CPU, one torch
# thread: train.cpu_threads), where training gives the same weights (docs/reproducibility.md)
SAME_KIND_OF_MACHINE = True

# outputs that differ on every run by design (glob on the output path -> why); not compared
VARYING = {
    "models/*/live/metrics.json": "the run's speed (images_per_s) is logged beside the losses",
    "models/*/live/plots/metrics": "images_per_s.tsv: the measured training speed per logging step",
    "data/reader_study": "the study's passphrase is drawn by the OS (secret: not from the seed in git)",
    "reports/reader_study/*.html": "the page's tokens and order follow the study id, hashed from the passphrase",
    "reports/reader_study/per_image.csv": "image keys of the study (from the passphrase)",
    "reports/reader_study/scores.json": "the study id (from the passphrase)",
    "reports/reader_study/per_reader.csv": "the study id (from the passphrase)",
    "data/release": "the dataset card names the code commit it was built from (and whether tracked files "
                    "differed from it): a dvc.lock is always committed after the run that made it",
}


def _md5(entry: dict) -> str | None:
    return entry.get("md5") or entry.get("hash")


@dataclass
class Stage:
    name: str
    deps: dict[str, str | None]
    params: dict
    outs: dict[str, str | None]


@dataclass
class StageDiff:
    name: str
    same_inputs: bool
    changed_inputs: list[str] = field(default_factory=list)
    changed_outs: list[str] = field(default_factory=list)     # compared outputs that differ
    varying_outs: list[str] = field(default_factory=list)     # VARYING outputs that differ (by design)
    missing: str = ""                                         # "" or which lock lacks the stage

    @property
    def reproduced(self) -> bool:
        return not self.missing and not self.changed_outs


def load(path: Path) -> dict[str, Stage]:
    stages = yaml.safe_load(Path(path).read_text())["stages"]
    return {name: Stage(name,
                        {d["path"]: _md5(d) for d in st.get("deps", [])},
                        st.get("params", {}),
                        {o["path"]: _md5(o) for o in st.get("outs", [])})
            for name, st in stages.items()}


def varying_reason(out: str) -> str | None:
    return next((why for pattern, why in VARYING.items() if fnmatch.fnmatch(out, pattern)), None)


def compare(committed: dict[str, Stage], fresh: dict[str, Stage]) -> list[StageDiff]:
    rows = []
    for name in list(committed) + [n for n in fresh if n not in committed]:
        a, b = committed.get(name), fresh.get(name)
        if a is None or b is None:
            rows.append(StageDiff(name, False, missing="committed" if a is None else "fresh"))
            continue
        changed_in = sorted(p for p in a.deps.keys() | b.deps.keys() if a.deps.get(p) != b.deps.get(p))
        changed_in += sorted(f"params:{f}" for f in a.params.keys() | b.params.keys()
                             if a.params.get(f) != b.params.get(f))
        row = StageDiff(name, not changed_in, changed_in)
        for out in sorted(a.outs.keys() | b.outs.keys()):
            if a.outs.get(out) != b.outs.get(out):
                (row.varying_outs if varying_reason(out) else row.changed_outs).append(out)
        rows.append(row)
    return rows


def downstream_of(lock: dict[str, Stage], patterns: tuple[str, ...]) -> set[str]:
    """The stages matching `patterns` and every stage downstream of them (a dependency at or inside
    an output of the other), from the deps and outs the lock records."""
    def overlaps(x: str, y: str) -> bool:
        return x == y or x.startswith(y.rstrip("/") + "/") or y.startswith(x.rstrip("/") + "/")

    below = {s for s in lock if any(fnmatch.fnmatch(s, p) for p in patterns)}
    grew = True
    while grew:
        new = {t for t in lock if t not in below
               and any(overlaps(d, o) for d in lock[t].deps for s in below for o in lock[s].outs)}
        below |= new
        grew = bool(new)
    return below


def failures(committed: dict[str, Stage], fresh: dict[str, Stage], *, machine_too: bool = False) -> list[str]:
    """Why the fresh run broke the promise, one line per stage ([] when it held). `machine_too`: the
    fresh run was on the same kind of machine, so the training stages must reproduce as well."""
    anywhere = set(committed) - downstream_of(committed, MACHINE_DEPENDENT)
    problems = []
    for row in compare(committed, fresh):
        if row.missing:
            problems.append(f"{row.name}: no entry in the {row.missing} dvc.lock")
        elif row.name in anywhere and not row.same_inputs:
            problems.append(f"{row.name}: inputs differ from the committed dvc.lock ({', '.join(row.changed_inputs)})")
        elif row.changed_outs and any(fnmatch.fnmatch(row.name, p) for p in MACHINE_DEPENDENT):
            if machine_too:
                problems.append(f"{row.name}: other outputs on the same kind of machine: {', '.join(row.changed_outs)}")
        elif row.changed_outs and (row.same_inputs or row.name in anywhere):
            problems.append(f"{row.name}: same inputs, other outputs: {', '.join(row.changed_outs)}")
    return problems


def table(rows: list[StageDiff]) -> str:
    lines = ["| stage | inputs | outputs | differing outputs |", "|---|---|---|---|"]
    for r in rows:
        if r.missing:
            lines.append(f"| {r.name} | missing in the {r.missing} lock | | |")
            continue
        inputs = "same" if r.same_inputs else "differ: " + ", ".join(r.changed_inputs)
        outs = "same" if r.reproduced else "differ"
        if r.reproduced and r.varying_outs:
            outs = "same (but the by-design varying ones)"
        detail = ", ".join(r.changed_outs + [f"{v} (by design)" for v in r.varying_outs])
        lines.append(f"| {r.name} | {inputs} | {outs} | {detail} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("committed", type=Path, help="the dvc.lock in git")
    ap.add_argument("fresh", type=Path, help="the dvc.lock a fresh clone's `make demo` wrote")
    ap.add_argument("--check", action="store_true", help="exit 1 when a stage that must reproduce did not")
    ap.add_argument("--same-machine", action="store_true", help="with --check: the training stages must reproduce too")
    args = ap.parse_args(argv)
    committed, fresh = load(args.committed), load(args.fresh)
    print(table(compare(committed, fresh)))
    problems = failures(committed, fresh, machine_too=args.same_machine)
    for p in problems:
        print(f"NOT REPRODUCED: {p}", file=sys.stderr)
    return 1 if args.check and problems else 0


if __name__ == "__main__":
    sys.exit(main())
