"""What a new user does: a fresh clone, `make demo`, then look at what came out.

Slow (the whole demo, on CPU, then one experiment): marked `slow`; `.ci/run` runs it. It reuses this
checkout's installed .venv instead of installing a second one (CI's own fresh clone already
exercises the install).
"""
from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests import builders

pytestmark = pytest.mark.slow


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


def test_reports_open_in_a_browser(demo, tmp_path):
    from tests.browser import screenshot

    clone, _, _ = demo
    pages = sorted((clone / "reports").glob("*.html"))
    if not pages:
        pytest.skip("the pipeline writes no HTML report yet")
    for html in pages:
        png = screenshot(html, tmp_path / f"{html.stem}.png")
        assert png.stat().st_size > 20_000, f"{html.name} rendered an (almost) empty page"


def _has_stage(clone: Path, name: str) -> bool:
    return name in yaml.safe_load((clone / "dvc.yaml").read_text())["stages"]


def test_release_verifies(demo):
    clone, _, _ = demo
    if not _has_stage(clone, "release"):
        pytest.skip("the pipeline has no release stage yet")
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


def test_params_change_reruns_only_what_depends_on_it(demo):
    clone, _, _ = demo
    dvc_yaml = yaml.safe_load((clone / "dvc.yaml").read_text())
    params = yaml.safe_load((clone / "params.yaml").read_text())
    original = (clone / "params.yaml").read_text()
    checked = 0
    for section in ("phantoms", "ingest", "audit", "crop", "letterbox", "split", "train", "generate", "evaluate", "release"):
        if section not in params or not isinstance(params[section], dict):
            continue
        key = next((k for k, v in params[section].items() if isinstance(v, (int, float)) and not isinstance(v, bool)), None)
        if key is None:
            continue
        value = params[section][key]
        builders.set_params(clone, {f"{section}.{key}": value + 1 if isinstance(value, int) else value * 1.5 + 0.01})
        changed = builders.changed_stages(clone)
        (clone / "params.yaml").write_text(original)
        expected = {name for name, st in _expanded_stages(clone).items() if _declares(st, f"{section}.{key}")}
        assert changed == expected, f"{section}.{key}: dvc status named {changed}, expected {expected}"
        checked += 1
    assert checked >= 2
    assert builders.changed_stages(clone) == set()


def _expanded_stages(clone: Path) -> dict:
    lock = yaml.safe_load((clone / "dvc.lock").read_text())["stages"]
    return lock


def _declares(lock_stage: dict, dotted: str) -> bool:
    recorded = lock_stage.get("params", {}).get("params.yaml", {})
    section = dotted.split(".")[0]
    return dotted in recorded or section in recorded


def test_experiment_run_and_metrics_diff(demo):
    clone, _, _ = demo
    if not _has_stage(clone, "train") and "train" not in (clone / "dvc.yaml").read_text():
        pytest.skip("the pipeline has no train stage yet")
    # a sweep over the synthetic draw: generate, evaluate, report and release rerun, the trained
    # generators are reused (a training sweep reruns the same dvc machinery, minutes longer on CPU)
    out = builders.dvc(clone, "exp", "run", "-S", "generate.seed_base=2000000", timeout=3000)
    assert "Ran experiment" in out or "Experiment" in out
    shown = json.loads(builders.dvc(clone, "exp", "show", "--json"))
    assert shown, "dvc exp show lists no experiment"
    diff = builders.dvc(clone, "metrics", "diff", "--json")
    assert diff.strip() not in ("", "{}"), "dvc metrics diff shows no change after the experiment"
    assert "Running stage 'train" not in out, "a sweep over generate.seed_base retrained a generator"
