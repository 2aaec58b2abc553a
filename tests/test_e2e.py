"""What a new user does: a fresh clone, `make demo`, then look at what came out: the committed
`dvc.lock` reproduced (docs/reproducibility.md), nothing left for git, the reports, the release.

Slow (the whole demo, on CPU, then one experiment): marked `slow`; `.ci/run` runs it. It reuses this
checkout's installed .venv instead of installing a second one (CI's own fresh clone already
exercises the install).
"""
from __future__ import annotations

import fnmatch
import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests import builders

pytestmark = [pytest.mark.slow, pytest.mark.timeout(7200)]   # `make demo` (up to 3000 s) in the first test's setup


@pytest.fixture(scope="module")
def demo(repo_root, tmp_path_factory):
    """A fresh clone of this repository with `make demo` run in it: (clone, log, seconds)."""
    if not (repo_root / ".venv" / "bin" / "python").exists():
        pytest.skip("no .venv in the checkout (run `make test`, which installs it)")
    clone = tmp_path_factory.mktemp("e2e") / "dentsynth"
    subprocess.run(["git", "clone", "-q", str(repo_root), str(clone)], check=True)
    (clone / ".venv").symlink_to(repo_root / ".venv")
    t0 = time.perf_counter()
    r = subprocess.run(["make", "demo"], cwd=clone, env=builders.env(), capture_output=True, text=True, timeout=3000)
    seconds = time.perf_counter() - t0
    log = r.stdout + r.stderr
    assert r.returncode == 0, f"make demo failed after {seconds:.0f} s:\n{log[-6000:]}"
    print(f"\n[e2e] make demo: {seconds:.0f} s on {os.cpu_count()} CPU cores")
    return clone, log, seconds


def _lock_outs(clone: Path) -> list[str]:
    lock = yaml.safe_load((clone / "dvc.lock").read_text())
    return sorted({o["path"] for st in lock["stages"].values() for o in st.get("outs", [])})


def test_every_stage_ran_and_left_its_outputs(demo):
    clone, log, _ = demo
    stages = set(yaml.safe_load((clone / "dvc.lock").read_text())["stages"])
    declared = builders.dvc(clone, "stage", "list", "--name-only").split()
    assert set(declared) == stages, f"stages without a lock entry: {set(declared) - stages}"
    for out in _lock_outs(clone):
        path = clone / out
        assert path.exists(), f"{out} is missing after make demo"
        if path.is_dir():
            assert any(path.iterdir()), f"{out} is empty"
    # nothing changed since the run; the inventory stage is always_changed by design (it looks at the archive)
    assert builders.changed_stages(clone) == set()


# tracked files a fresh clone's `make demo` rewrites with other bytes, each with why; nothing else may
# show in `git status` (bench/lock_diff.py: VARYING, the same outputs as DVC sees them)
CHANGED_BY_DESIGN = {
    "models/*/live/metrics.json": "the training speed (images_per_s) of the run, logged beside the losses",
    "models/*/live/plots/metrics/images_per_s.tsv": "the training speed per logging step",
    "reports/reader_study/scores.json": "names the study, whose id follows the reader study's OS-drawn passphrase",
    "dvc.lock": "records the hashes of the files above, of the reader study's key and of the release "
                "(its dataset card names the code commit)",
}


def test_demo_reproduces_the_committed_lock(demo, tmp_path):
    """Every stage up to `split` gives the committed inputs and outputs byte for byte; every later
    stage gives the committed outputs whenever its inputs are the committed ones (the same generator:
    the same images and metrics); on this kind of machine the training stages give the committed
    weights too (bench/lock_diff.py)."""
    from bench import lock_diff

    clone, _, _ = demo
    committed = tmp_path / "committed.lock"
    committed.write_bytes(subprocess.run(["git", "show", "HEAD:dvc.lock"], cwd=clone, check=True,
                                         capture_output=True).stdout)
    before, after = lock_diff.load(committed), lock_diff.load(clone / "dvc.lock")
    print("\n" + lock_diff.table(lock_diff.compare(before, after)))
    problems = lock_diff.failures(before, after, machine_too=lock_diff.SAME_KIND_OF_MACHINE)
    assert not problems, "\n".join(problems)


def test_git_status_is_clean_after_the_demo(demo):
    clone, _, _ = demo
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=clone, check=True,
                            capture_output=True, text=True).stdout.splitlines()
    unexpected = [line for line in status
                  if not (line.startswith(" M ") and any(fnmatch.fnmatch(line[3:], p) for p in CHANGED_BY_DESIGN))]
    assert not unexpected, "make demo left these for git (a .gitignore to add, a changed tracked file):\n" + \
        "\n".join(unexpected)


def test_demo_says_where_to_look(demo):
    clone, log, _ = demo
    tail = log[log.rindex("Done. Open in a browser:"):]
    for page in ("reports/quality.html", "reports/audit.html", "reports/crops.html", "reports/reader_study/"):
        assert page in tail, f"make demo does not point at {page}"
    release = sorted((clone / "data" / "release").glob("*.tar.gz"))
    assert release and f"-m stages.verify_release data/release/{release[0].name}" in tail
    assert "is empty" not in log, "DVC warned about an empty dependency"


def test_repro_of_an_unchanged_project_runs_only_inventory_and_warns_not(demo):
    clone, _, _ = demo
    log = builders.dvc(clone, "repro")
    assert builders.ran_stages(log, always=True) == builders.ALWAYS_CHANGED, log[-3000:]
    assert "WARNING" not in log, log[-3000:]


def _declared_pages(clone: Path) -> set[str]:
    """Every HTML page dvc.yaml declares as a stage output (``${...}`` filled in from params.yaml)."""
    from pipeline.core import config

    params = config.parse_yaml((clone / "params.yaml").read_text())

    def fill(path: str) -> str:
        def value(m):
            node = params
            for part in m[1].split("."):
                node = node[part]
            return str(node)
        return re.sub(r"\$\{([\w.]+)\}", value, path)

    pages = set()
    for st in yaml.safe_load((clone / "dvc.yaml").read_text())["stages"].values():
        for out in (st.get("do", st)).get("outs", []):
            path = out if isinstance(out, str) else next(iter(out))
            if path.endswith(".html"):
                pages.add(fill(path))
    return pages


def test_reports_open_in_a_browser(demo, tmp_path):
    from tests.browser import screenshot

    clone, _, _ = demo
    declared = _declared_pages(clone)
    assert {"reports/audit.html", "reports/crops.html", "reports/quality.html"} <= declared
    assert any(p.startswith("reports/reader_study/") for p in declared), declared
    missing = sorted(p for p in declared if not (clone / p).is_file())
    assert not missing, f"make demo left no {missing}"
    pages = sorted({*(clone / "reports").glob("*.html"), *(clone / "reports" / "reader_study").glob("*.html")})
    assert {p.relative_to(clone).as_posix() for p in pages} >= declared
    for html in pages:
        png = screenshot(html, tmp_path / f"{html.parent.name}_{html.stem}.png")
        assert png.stat().st_size > 20_000, f"{html.name} rendered an (almost) empty page"


def _has_stage(clone: Path, name: str) -> bool:
    return name in yaml.safe_load((clone / "dvc.yaml").read_text())["stages"]


def test_release_verifies(demo):
    clone, _, _ = demo
    assert _has_stage(clone, "release"), "dvc.yaml has no release stage"
    releases = [p for p in (clone / "data" / "release").iterdir()]
    assert any(p.is_dir() for p in releases) and any(p.name.endswith(".tar.gz") for p in releases)
    for p in releases:
        r = subprocess.run([str(builders.BIN / "python"), "-m", "stages.verify_release", str(p)], cwd=clone,
                           env=builders.env(), capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr


def test_no_identifying_value_leaves_the_raw_archive(demo):
    """The planted DICOM marker strings appear in no byte under data/ or reports/ (the raw demo
    archive itself excepted: it is the input) nor in the demo's log."""
    from pipeline.core import config
    from pipeline.demo import phantoms

    clone, log, _ = demo
    markers = [m.encode() for m in phantoms.marker_strings(config.seed(config.load_params(clone / "params.yaml")))]
    assert markers
    raw = clone / "data" / "demo_raw"
    assert any(m in p.read_bytes() for p in raw.rglob("*.dcm") for m in markers), "markers not planted?"
    scanned = 0
    for top in ("data", "reports"):
        for p in (clone / top).rglob("*"):
            if p.is_file() and raw not in p.parents:
                data = p.read_bytes()
                scanned += 1
                for m in markers:
                    assert m not in data and m.lower() not in data.lower(), f"{m!r} found in {p}"
    assert scanned > 50
    for m in markers:
        assert m.decode() not in log


def _stage_commands(clone: Path) -> dict[str, tuple[str, str | None]]:
    """Every DVC stage (foreach items expanded) -> (the module its cmd runs, its argument)."""
    spec = yaml.safe_load((clone / "dvc.yaml").read_text())["stages"]
    out = {}
    for name in builders.dvc(clone, "stage", "list", "--name-only").split():
        base, _, item = name.partition("@")
        cmd = spec[base].get("do", spec[base])["cmd"].split()
        assert cmd[:3] == ["python", "-m", cmd[2]] and cmd[2].startswith("stages."), cmd
        out[name] = (cmd[2], item or None)
    return out


def _downstream(clone: Path) -> dict[str, set[str]]:
    """stage -> every stage downstream of it (a dep of one at or inside an out of the other), from the
    deps and outs dvc.lock records."""
    lock = yaml.safe_load((clone / "dvc.lock").read_text())["stages"]
    outs = {s: [o["path"] for o in st.get("outs", [])] for s, st in lock.items()}
    deps = {s: [d["path"] for d in st.get("deps", [])] for s, st in lock.items()}

    def overlaps(a: str, b: str) -> bool:
        return a == b or a.startswith(b.rstrip("/") + "/") or b.startswith(a.rstrip("/") + "/")

    children = {s: {t for t in lock if t != s and any(overlaps(d, o) for d in deps[t] for o in outs[s])}
                for s in lock}
    below = {}
    for s in lock:
        seen, todo = set(), list(children[s])
        while todo:
            t = todo.pop()
            if t not in seen:
                seen.add(t)
                todo.extend(children[t])
        below[s] = seen
    return below


def _declared_changed(clone: Path) -> dict[str, set[str]]:
    """stage -> the params.yaml names it declares that `dvc status` reports changed."""
    out = builders.dvc(clone, "status", "--json")
    status = json.loads(out[out.index("{"):]) if "{" in out else {}
    changed: dict[str, set[str]] = {}
    for stage, entries in status.items():
        for entry in entries:
            names = entry.get("changed deps", {}).get("params.yaml") if isinstance(entry, dict) else None
            if isinstance(names, dict):
                changed.setdefault(stage, set()).update(names)
    return changed


def _leaves(node, prefix: str = "") -> list[str]:
    if isinstance(node, dict) and node:
        return [k for key, v in node.items() for k in _leaves(v, f"{prefix}.{key}" if prefix else str(key))]
    return [prefix]


def test_params_change_reruns_only_what_depends_on_it(demo, tmp_path):
    """For every key of params.yaml (nested ones too): the stages whose code reads it (derived by
    planting another value and running each stage's main with its library calls stubbed:
    tests/params_reads.py) and everything downstream of them is exactly what DVC reruns when it
    changes. DVC's side: which declared params `dvc status` reports changed, per stage, and
    `dvc repro --dry --force-downstream --downstream` of those, per section, for what follows from
    them. (`inventory` reruns on every repro by design, whatever changed: it looks at the archive.)"""
    from pipeline.core import config

    clone, _, _ = demo
    original = {f: (clone / f).read_text() for f in ("params.yaml", "dvc.lock")}
    params = config.parse_yaml(original["params.yaml"])
    stages = _stage_commands(clone)
    out = tmp_path / "reads.json"
    r = subprocess.run([str(builders.BIN / "python"), "-m", "tests.params_reads", json.dumps(stages), str(out)],
                       cwd=clone, env=builders.env(), capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    derived = json.loads(out.read_text())
    reads, planted = derived["reads"], derived["planted"]
    assert sorted(reads) == sorted(_leaves(params)) and len(reads) > 100       # every key of every section
    assert "crop" in reads["crop.margin"] and "split" in reads["seed"], reads   # the derivation sees reads
    below = _downstream(clone)
    assert set(below) == set(stages)

    def reruns(direct) -> set[str]:
        return set(direct).union(*(below[s] for s in direct)) - builders.ALWAYS_CHANGED

    # `train` is declared whole by each train@V: `train.overrides` may replace any key for one variant
    # and must name known variants, which DVC cannot express per variant, so a key one variant's
    # override shadows (train.steps), or another variant's override, still reruns every train@V
    trains = {s for s in stages if s.startswith("train@")}
    try:
        builders.set_params(clone, planted)     # every key at once: each stage's changed declared names
        declared = _declared_changed(clone)
        (clone / "params.yaml").write_text(original["params.yaml"])
        by_dvc, problems = {}, []
        for key, readers in reads.items():
            by_dvc[key] = {s for s, names in declared.items() if any(key == n or key.startswith(n + ".") for n in names)}
            # every stage that reads the key declares it (being downstream of one that does is not
            # enough: on an archive of its own the data in between need not change) ...
            missed = set(readers) - builders.ALWAYS_CHANGED - by_dvc[key]
            # ... and what DVC reruns for it is those stages and what follows from them, nothing else
            allowed = reruns(trains) if key.startswith("train.") else set()
            needless = reruns(by_dvc[key]) - reruns(set(readers) - builders.ALWAYS_CHANGED) - allowed
            if missed or needless:
                problems.append(f"{key} = {planted[key]!r}: read by {sorted(readers)}, declared by "
                                f"{sorted(by_dvc[key])}; not declared {sorted(missed)}, needless reruns {sorted(needless)}")
        assert not problems, "\n".join(problems)
        # what DVC schedules downstream, per section: exactly those stages and what follows from them
        for section in params:
            keys = [k for k in reads if k == section or k.startswith(section + ".")]
            changed = set().union(*(by_dvc[k] for k in keys))
            assert changed, f"no stage declares any key of {section}"
            builders.set_params(clone, {k: planted[k] for k in keys})
            log = builders.dvc(clone, "repro", "--dry", "--force-downstream", "--downstream", *sorted(changed))
            (clone / "params.yaml").write_text(original["params.yaml"])
            ran = builders.ran_stages(log)
            assert ran == set().union(*(reruns(by_dvc[k]) for k in keys)), (section, sorted(ran))
            assert ran >= set().union(*(reruns(set(reads[k]) - builders.ALWAYS_CHANGED) for k in keys)), section
    finally:
        for name, text in original.items():
            (clone / name).write_text(text)
    assert builders.changed_stages(clone) == set()


def test_experiment_run_and_metrics_diff(demo):
    clone, _, _ = demo
    assert _has_stage(clone, "train"), "dvc.yaml has no train stage"
    # a sweep over the synthetic draw: generate, evaluate, report and release rerun, the trained
    # generators are reused (a training sweep reruns the same dvc machinery, minutes longer on CPU)
    out = builders.dvc(clone, "exp", "run", "-S", "generate.seed_base=2000000", timeout=3000)
    assert "Ran experiment" in out or "Experiment" in out
    shown = json.loads(builders.dvc(clone, "exp", "show", "--json"))
    assert shown, "dvc exp show lists no experiment"
    diff = builders.dvc(clone, "metrics", "diff", "--json")
    assert diff.strip() not in ("", "{}"), "dvc metrics diff shows no change after the experiment"
    assert "Running stage 'train" not in out, "a sweep over generate.seed_base retrained a generator"
