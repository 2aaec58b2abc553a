import pytest

from pipeline.core import atomic


def test_write_text_replaces_whole_file(tmp_path):
    p = tmp_path / "sub" / "a.txt"
    atomic.write_text(p, "one")
    atomic.write_text(p, "two")
    assert p.read_text() == "two"
    assert [x.name for x in p.parent.iterdir()] == ["a.txt"]


def test_open_file_leaves_nothing_on_failure(tmp_path):
    p = tmp_path / "m.csv"
    with pytest.raises(RuntimeError):
        with atomic.open_file(p, "w") as f:
            f.write("half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_directory_swaps_in_only_on_success(tmp_path):
    out = tmp_path / "out"
    with atomic.directory(out) as tmp:
        (tmp / "x").write_text("1")
        assert not out.exists()
    assert (out / "x").read_text() == "1"
    with pytest.raises(KeyboardInterrupt):
        with atomic.directory(out) as tmp:
            (tmp / "y").write_text("2")
            raise KeyboardInterrupt
    assert sorted(p.name for p in out.iterdir()) == ["x"], "a killed run must keep the old output"
    assert [p.name for p in tmp_path.iterdir()] == ["out"], "no temp folder left behind"
    with atomic.directory(out) as tmp:
        (tmp / "z").write_text("3")
    assert sorted(p.name for p in out.iterdir()) == ["z"]


def test_stale_temp_folder_of_a_killed_writer_is_removed_a_live_one_kept(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    out = tmp_path / "ingested"
    # a writer that dies by SIGKILL inside atomic.directory: its temp folder stays behind
    code = ("import sys, time; from pathlib import Path; from pipeline.core import atomic\n"
            "with atomic.directory(Path(sys.argv[1])) as t:\n"
            "    (t / 'half.png').write_bytes(b'x'); print(t, flush=True); time.sleep(60)\n")
    live = subprocess.Popen([sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE, text=True)
    dead = subprocess.Popen([sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        live_tmp, dead_tmp = live.stdout.readline().strip(), dead.stdout.readline().strip()
        os.kill(dead.pid, signal.SIGKILL)
        dead.wait()
        assert os.path.isdir(dead_tmp)
        with atomic.directory(out) as tmp:
            (tmp / "x").write_text("1")
        assert not os.path.exists(dead_tmp), "the killed writer's temp folder is removed"
        assert os.path.isdir(live_tmp), "a live writer's temp folder is left alone"
        assert atomic.remove_stale(out) == []
    finally:
        live.kill()
        live.wait()   # reaped: the writer is gone (no sleep needed)
    assert [p.name for p in tmp_path.iterdir() if p.name != "ingested"] == [os.path.basename(live_tmp)]
    assert atomic.remove_stale(out) == [os.path.basename(live_tmp)]  # its writer is gone now
