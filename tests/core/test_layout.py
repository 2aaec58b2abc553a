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
