"""One entry for every stage: arguments checked, params.yaml read once, exit codes 0/1/2."""
import pytest

from pipeline.core import cli
from pipeline.core.config import ConfigError


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "params.yaml").write_text("seed: 3\nvariants:\n  v: {source: full, aspect: '16:9', mode: letterbox, "
                                          "height: 9, width: 16}\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _exit(main, argv, **kw):
    with pytest.raises(SystemExit) as e:
        cli.run(main, argv=argv, **kw)
    return e.value.code


def test_main_gets_params_and_variant(project):
    seen = []
    assert _exit(lambda params, name: seen.append((params["seed"], name)), ["v"], variant=True) == 0
    assert seen == [(3, "v")]


def test_exit_codes(project, capsys):
    assert _exit(lambda params: 1, []) == 1                       # the stage found a problem
    assert _exit(lambda params: None, ["extra"]) == 2             # wrong usage
    assert "usage:" in capsys.readouterr().err
    assert _exit(lambda params, name: None, [], variant=True) == 2

    def bad(params):
        raise ConfigError("train.overrides.teeth_sqaure: no variant of that name")

    assert _exit(bad, []) == 2
    assert "train.overrides.teeth_sqaure" in capsys.readouterr().err

    def missing(params):
        raise FileNotFoundError("data/split/split.csv")

    assert _exit(missing, []) == 1
    assert "missing input: data/split/split.csv" in capsys.readouterr().err


def test_broken_params_yaml_is_usage_error(project, capsys):
    (project / "params.yaml").write_text("- a list, not a mapping\n")
    assert _exit(lambda params: 0, []) == 2
    assert "top level must be a mapping" in capsys.readouterr().err


def test_malformed_params_yaml_is_usage_error(project, capsys):
    (project / "params.yaml").write_text("seed: 3\ntrain: {steps: 3\n")
    assert _exit(lambda params: 0, []) == 2
    assert capsys.readouterr().err.startswith("params.yaml: not valid YAML: expected ',' or '}'")
