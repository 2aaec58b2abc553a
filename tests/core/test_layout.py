from pathlib import Path

from pipeline.core.layout import Layout


def test_layout_spells_the_design_folders_once(tmp_path):
    """The folder names of shared/DESIGN.md, under any root."""
    lay = Layout(tmp_path)
    assert lay.split_csv == tmp_path / "data/split/split.csv"
    assert lay.variant("v") == tmp_path / "data/variants/v"
    assert lay.synthetic("v") == tmp_path / "data/synthetic/v"
    assert lay.model("v") == tmp_path / "models/v"
    assert (lay.eval, lay.metrics_json, lay.audit_json) == (tmp_path / "data/eval", tmp_path / "reports/metrics.json",
                                                           tmp_path / "reports/audit.json")
    assert (lay.ingested, lay.audit, lay.crops, lay.release) == tuple(
        tmp_path / "data" / n for n in ("ingested", "audit", "crops", "release"))
    assert Layout().split_csv == Path("data/split/split.csv")


def _declared_paths(dvc_yaml: dict) -> set[str]:
    """Every dep and out path of dvc.yaml (foreach stages with their ``${key}`` placeholder)."""
    paths = set()
    for st in dvc_yaml["stages"].values():
        st = st.get("do", st)
        for kind in ("deps", "outs", "metrics", "plots"):
            for entry in st.get(kind, []) or []:
                paths.add(next(iter(entry)) if isinstance(entry, dict) else entry)
    return paths


def test_every_layout_path_is_one_dvc_yaml_declares(repo_root):
    """The stages hand the library Layout's paths: each must be a dep/out (or lie inside one) of
    dvc.yaml, so that renaming a folder in one place and not the other fails here."""
    import yaml

    declared = _declared_paths(yaml.safe_load((repo_root / "dvc.yaml").read_text()))
    lay = Layout()
    paths = {name: getattr(lay, name) for name in dir(Layout)
             if isinstance(getattr(Layout, name), property) and name != "lock"}  # dvc.lock: DVC's own record
    paths |= {"variant": lay.variant("${key}"), "synthetic": lay.synthetic("${key}"), "model": lay.model("${key}"),
              "sr_model": lay.sr_model("${key}")}
    assert len(paths) >= 20
    for name, p in paths.items():
        p = p.as_posix()
        inside = [d for d in declared if p == d or p.startswith(d.rstrip("/") + "/") or d.startswith(p + "/")]
        assert inside, f"Layout.{name} = {p} is no dep or out of any dvc.yaml stage"
