from pipeline.release.provenance import Provenance, provenance_from_lock, read_lock


def test_provenance_reads_training_data_and_params_from_the_lock(tmp_path):
    (tmp_path / "dvc.lock").write_text(
        "schema: '2.0'\nstages:\n  train@v:\n    cmd: python -m stages.train v\n    deps:\n"
        "    - path: data/variants/v\n      md5: abc.dir\n    - path: pipeline/gan\n      md5: def.dir\n"
        "    params:\n      params.yaml:\n        train.steps: 350\n")
    lock = read_lock(tmp_path / "dvc.lock")
    info = provenance_from_lock(lock, ["v", "absent"])
    assert info["v"]["training_data"] == {"data/variants/v": "abc.dir"}    # code folders are not training data
    assert info["v"]["params"] == {"params.yaml": {"train.steps": 350}}
    assert info["absent"] == {"training_data": {}, "params": {}}
    assert read_lock(tmp_path / "missing.lock") == {} and Provenance().code_commit == "unknown"
