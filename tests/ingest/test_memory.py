"""Peak memory of ingest + audit (one process, workers=1) on an archive holding a 20000x20000 PNG
(~400 KB on disk, 400 Mpx), a 100000x10 and a 100000x40 strip and three OPG-sized images: the
header checks reject the first three unread, so the peak stays that of the ordinary images."""
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from tests import builders

MEASURE = r"""
import json, resource, sys, time
from pathlib import Path
from pipeline.audit.audit import AuditConfig
from pipeline.audit.run import run_audit
from pipeline.ingest import ingest
from pipeline.ingest.ingest import IngestConfig
root = Path(sys.argv[1])
t = time.perf_counter()
rows = ingest.run_ingest(IngestConfig(raw_dir=str(root / "raw"), pseudonymise_paths=False), root / "ingested",
                         workers=1, progress=False)
audit = run_audit(AuditConfig(), root / "ingested", root / "audit", None, workers=1, progress=False)
# VmHWM: this process's own peak RSS (ru_maxrss would carry over the forking parent's across exec)
try:
    peak = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")) * 1024
except (OSError, StopIteration):
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"peak_bytes": peak, "seconds": time.perf_counter() - t,
                  "rows": {r["source_path"]: [r["status"], r["reason"]] for r in rows}, "audited": len(audit)}))
"""


@pytest.mark.slow
def test_oversize_png_costs_no_memory(tmp_path, repo_root):
    raw = tmp_path / "raw"
    raw.mkdir()
    builders._png_header_only_image(raw / "huge.png", 20000, 20000)
    builders._png_header_only_image(raw / "strip.png", 100_000, 10)
    builders._png_header_only_image(raw / "wide_strip.png", 100_000, 40)
    from pipeline.demo import phantoms

    for i in range(3):
        img, _ = phantoms.render_opg(np.random.default_rng(i), 1400, 2900)  # a real OPG's size
        cv2.imwrite(str(raw / f"opg{i}.png"), np.round(img * 65535).astype(np.uint16))
    size = (raw / "huge.png").stat().st_size
    r = subprocess.run([sys.executable, "-c", MEASURE, str(tmp_path)], cwd=repo_root, env=builders.env(),
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    print(f"\n20000x20000 PNG of {size / 1e3:.0f} KB: ingest+audit peak RSS {out['peak_bytes'] / 2**20:.0f} MiB "
          f"in {out['seconds']:.1f} s; rows {out['rows']}")
    assert out["rows"]["huge.png"][0] == "rejected" and "too large" in out["rows"]["huge.png"][1]
    assert out["rows"]["strip.png"][0] == "rejected" and "too small" in out["rows"]["strip.png"][1]
    assert out["rows"]["wide_strip.png"][0] == "rejected" and "shape" in out["rows"]["wide_strip.png"][1]
    assert out["peak_bytes"] < 1 << 30, out["peak_bytes"]
