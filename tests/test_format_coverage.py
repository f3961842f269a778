"""Every format module is exercised by the project's own samples, without ../shared: a format
that only the shared corpus reaches is a format nobody here can change safely."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_format_module_is_covered_by_the_projects_own_samples() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "format_coverage.py")],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
