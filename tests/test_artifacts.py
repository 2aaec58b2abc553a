"""dvc.yaml declares each variant's generator as a DVC model artifact, so it can be fetched by name
(`dvc artifacts get URL generator-<variant>`; fetched for real in tests/test_handoff.py)."""
from __future__ import annotations

import re

import yaml

from pipeline.core import config

# DVC's rule for an artifact name (dvc.annotations / `dvc artifacts get`): lower case, digits, dashes
NAME = re.compile(r"^[a-z0-9]([a-z0-9-/]*[a-z0-9])?$")


def test_every_variant_generator_is_a_model_artifact(repo_root):
    dvc_yaml = yaml.safe_load((repo_root / "dvc.yaml").read_text())
    variants = config.parse_yaml((repo_root / "params.yaml").read_text())["variants"]
    artifacts = dvc_yaml["artifacts"]
    train_outs = [next(iter(o)) if isinstance(o, dict) else o for o in dvc_yaml["stages"]["train"]["do"]["outs"]]
    assert "models/${key}/generator.pt" in train_outs   # the artifact is what train@V writes
    models = {a["path"]: name for name, a in artifacts.items() if a.get("type") == "model"}
    assert set(models) == {f"models/{v}/generator.pt" for v in variants}
    for path, name in models.items():
        assert NAME.match(name), f"{name}: DVC refuses this artifact name"
        variant = path.split("/")[1]
        assert name == f"generator-{variant.replace('_', '-')}"
        assert artifacts[name].get("desc"), f"{name} has no description"
