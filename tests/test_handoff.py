"""How a researcher receives a release, end to end with a real DVC remote (a local folder standing in
for the institute's NFS/SSH/S3 store): the project pushes each release under a git tag; the
researcher's own git + DVC project `dvc import`s the tagged release folder, verifies what arrived,
and `dvc update --rev`s to a newer tag; each variant's generator is fetched by name as a DVC model
artifact. The producing project is this repository's code with tiny inputs: `train@V` for a few
steps on generated blobs (super-resolution off), `generate@V`, then `release` (the memorisation table and metrics, which
`evaluate` would write, are written here), so it takes a minute rather than the demo's ten.
"""
from __future__ import annotations

import csv
import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests import builders

pytestmark = pytest.mark.slow

GIT = ["git", "-c", "user.email=t@example.org", "-c", "user.name=test"]
FAST_TRAIN = {"train.steps": 2, "train.overrides": {}, "train.batch": 4, "train.log_every": 1,
              "train.sample_every": 2, "train.checkpoint_every": 2, "generate.n": 4}


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(GIT + list(args), cwd=cwd, check=True, capture_output=True, text=True).stdout


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _verify(project: Path, path: Path) -> str:
    r = subprocess.run([str(builders.BIN / "python"), "-m", "stages.verify_release", str(path)], cwd=project,
                       env=builders.env(), capture_output=True, text=True)
    assert r.returncode == 0, f"verify_release {path}:\n{r.stdout}{r.stderr}"
    return r.stdout


def _variants(project: Path) -> dict:
    return yaml.safe_load((project / "params.yaml").read_text())["variants"]


def _write_evaluate_outputs(project: Path) -> None:
    """What `evaluate` hands the release: the memorisation table (nothing flagged) and the metrics."""
    rows = []
    for variant in _variants(project):
        with open(project / "data" / "synthetic" / variant / "seeds.csv", newline="") as f:
            rows += [{"variant": variant, "file": r["file"], "nearest_train_id": "0" * 16, "distance": 0.5,
                      "threshold": 0.1, "flagged": False} for r in csv.DictReader(f)]
    nearest = project / "data" / "eval" / "nearest.csv"
    nearest.parent.mkdir(parents=True, exist_ok=True)
    with open(nearest, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    (project / "reports").mkdir(exist_ok=True)
    (project / "reports" / "metrics.json").write_text(json.dumps({v: {} for v in _variants(project)}))


def _release(project: Path, version: str, seed_base: int) -> None:
    builders.set_params(project, {"release.version": version, "generate.seed_base": seed_base})
    builders.dvc(project, "repro", "-s", *(f"generate@{v}" for v in _variants(project)))
    _write_evaluate_outputs(project)
    builders.dvc(project, "repro", "-s", "release")
    _git(project, "add", "-A")
    _git(project, "commit", "-qm", f"release {version}")
    _git(project, "tag", "-a", f"v{version}", "-m", f"dentsynth release {version}")
    for name in yaml.safe_load((project / "dvc.yaml").read_text())["artifacts"]:   # what `dvc artifacts get` finds
        _git(project, "tag", "-a", f"{name}@v{version}", "-m", f"{name} of release {version}")
    builders.dvc(project, "push")


@pytest.fixture(scope="module")
def producer(repo_root, tmp_path_factory):
    """This project with two tagged releases (v0.1.0, v0.2.0) pushed to a local-folder remote; its
    own DVC cache is deleted afterwards, so whatever a researcher receives comes from the remote."""
    root = tmp_path_factory.mktemp("handoff")
    project = builders.copy_project(repo_root, root / "dentsynth")
    (project / "dvc.lock").unlink()           # this test's runs only: the demo's outputs are not here
    builders.set_params(project, FAST_TRAIN)
    variants = _variants(project)
    builders.set_params(project, {f"variants.{v}.sr_scale": 0 for v in variants})   # the GAN's size delivered
    for variant, spec in variants.items():
        _, split = builders.make_train_set(project / "data" / "variants" / variant,
                                           size=(spec["height"], spec["width"]))
    (project / "data" / "split").mkdir(parents=True)
    split.rename(project / "data" / "split" / "split.csv")
    for variant in variants:
        (project / "data" / "variants" / variant / "split.csv").unlink(missing_ok=True)
    remote = root / "remote"
    builders.dvc(project, "remote", "add", "-d", "institute", str(remote))
    builders.dvc(project, "repro", "-s", *(f"{s}@{v}" for s in ("train", "train_sr") for v in variants))
    generators = {v: _sha256(project / "models" / v / "generator.pt") for v in variants}
    _release(project, "0.1.0", 1_000_000)
    first = {p.name: _sha256(p) for p in (project / "data" / "release").glob("*.tar.gz")}
    _release(project, "0.2.0", 2_000_000)
    ran = ["release", *(f"{s}@{v}" for s in ("train", "train_sr", "generate") for v in variants)]
    assert not set(ran) & builders.changed_stages(project, "release")
    out = builders.dvc(project, "status", "--cloud", "--json", *ran)
    in_sync = json.JSONDecoder().raw_decode(out[out.index("{"):])[0]
    shutil.rmtree(project / ".dvc" / "cache")
    return project, remote, generators, first, in_sync


@pytest.fixture()
def researcher(tmp_path):
    """The researcher's own project: git + DVC, nothing of dentsynth's."""
    study = tmp_path / "study"
    study.mkdir()
    _git(study, "init", "-q")
    builders.dvc(study, "init", "-q")
    _git(study, "commit", "-qm", "dvc init")
    return study


def test_remote_holds_every_pushed_output(producer):
    _, remote, _, _, in_sync = producer
    assert in_sync == {}, f"outputs not on the remote after dvc push: {in_sync}"
    assert sum(p.is_file() for p in remote.rglob("*")) > 10


def test_import_tagged_release_verify_and_update(producer, researcher, repo_root):
    project, _, _, first, _ = producer
    builders.dvc(researcher, "import", str(project), "data/release", "-o", "dentsynth", "--rev", "v0.1.0")
    got = researcher / "dentsynth"
    assert sorted(p.name for p in got.iterdir()) == ["dentsynth-demo-0.1.0", "dentsynth-demo-0.1.0.tar.gz"]
    assert {p.name: _sha256(p) for p in got.glob("*.tar.gz")} == first   # the very bytes released
    for path in got.iterdir():
        assert "verifies" in _verify(repo_root, path)
    record = yaml.safe_load((researcher / "dentsynth.dvc").read_text())
    assert record["deps"][0]["repo"]["rev"] == "v0.1.0"
    assert record["deps"][0]["repo"]["rev_lock"] == _git(project, "rev-list", "-n1", "v0.1.0").strip()
    _git(researcher, "add", "dentsynth.dvc", ".gitignore")
    _git(researcher, "commit", "-qm", "dentsynth 0.1.0")

    builders.dvc(researcher, "update", "--rev", "v0.2.0", "dentsynth.dvc")
    assert sorted(p.name for p in got.iterdir()) == ["dentsynth-demo-0.2.0", "dentsynth-demo-0.2.0.tar.gz"]
    for path in got.iterdir():
        assert "verifies" in _verify(repo_root, path)
    card = (got / "dentsynth-demo-0.2.0" / "DATASET_CARD.md").read_text()
    assert "0.2.0" in card
    record = yaml.safe_load((researcher / "dentsynth.dvc").read_text())
    assert record["deps"][0]["repo"]["rev"] == "v0.2.0"
    assert builders.changed_stages(researcher) == set()


def test_get_one_tarball_by_tag(producer, tmp_path, repo_root):
    """The release manual's one-liner (docs/stages/release.md): `dvc get` of a release tarball at a tag, no DVC project needed."""
    project, _, _, first, _ = producer
    (name,) = first
    out = tmp_path / name
    builders.dvc(tmp_path, "get", str(project), f"data/release/{name}", "--rev", "v0.1.0", "-o", str(out))
    assert _sha256(out) == first[name]
    _verify(repo_root, out)


def test_generators_fetched_by_artifact_name(producer, tmp_path):
    project, _, generators, _, _ = producer
    artifacts = yaml.safe_load((project / "dvc.yaml").read_text())["artifacts"]
    by_path = {a["path"]: name for name, a in artifacts.items() if a.get("type") == "model"}
    for variant, digest in generators.items():
        name = by_path[f"models/{variant}/generator.pt"]
        for version in ("v0.1.0", None):   # a registered version, or the latest one
            out = tmp_path / f"{variant}-{version}.pt"
            builders.dvc(tmp_path, "artifacts", "get", str(project), name, *(["--rev", version] if version else []),
                         "-o", str(out))
            assert _sha256(out) == digest, f"{name} {version}: other bytes than the trained generator"
