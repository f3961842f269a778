"""Line coverage of every format module by the project's own samples alone.

Runs tests/test_samples.py (nothing else, so ../shared/corpus plays no part) under
coverage.py, restricted to imap_bouncer/analysis/formats, then prints each module's line
coverage and the format modules (formats/*.py) below the bar. Exits 1 when any is below it,
or when the sample tests themselves fail.

    python bench/format_coverage.py [--minimum PERCENT]

Needs coverage.py in the interpreter running it (`pip install coverage`).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORMATS = "imap_bouncer/analysis/formats"


def run(command: str, *args: str, data_file: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "coverage", command, f"--data-file={data_file}", *args]
    return subprocess.run(command, cwd=ROOT, check=False, capture_output=True, text=True)


def measure(data_file: Path) -> dict[str, tuple[int, int]]:
    """{module path: (statements, missed)} of every file under the formats package."""
    tests = run("run", f"--source={FORMATS}", "-m", "pytest", "-q", "-p", "no:cacheprovider",
                "tests/test_samples.py", data_file=data_file)
    if tests.returncode != 0:
        sys.exit(f"the sample tests failed:\n{tests.stdout[-4000:]}{tests.stderr[-2000:]}")
    report = data_file.with_suffix(".json")
    result = run("json", "-q", "-o", str(report), data_file=data_file)
    if result.returncode != 0:
        sys.exit(f"coverage json failed: {result.stderr}")
    files = json.loads(report.read_text())["files"]
    return {path: (data["summary"]["num_statements"], data["summary"]["missing_lines"])
            for path, data in files.items()}


def percent(statements: int, missed: int) -> float:
    return 100.0 * (statements - missed) / statements if statements else 100.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minimum", type=float, default=90.0,
                        help="the bar each formats/*.py module must reach (default 90)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        figures = measure(Path(scratch) / ".coverage")
    width = max(len(path) for path in figures)
    print(f"{'module':<{width}}  {'lines':>5}  {'missed':>6}  {'cover':>6}")
    for path, (statements, missed) in sorted(figures.items()):
        cover = percent(statements, missed)
        print(f"{path:<{width}}  {statements:>5}  {missed:>6}  {cover:>5.1f}%")
    total = sum(s for s, _ in figures.values()), sum(m for _, m in figures.values())
    print(f"{'total':<{width}}  {total[0]:>5}  {total[1]:>6}  {percent(*total):>5.1f}%")
    below = [path for path, figure in sorted(figures.items())
             if Path(path).parent.as_posix() == FORMATS and percent(*figure) < args.minimum]
    if below:
        print(f"\n{len(below)} format modules below {args.minimum:g}%:")
        for path in below:
            print(f"  {path}  {percent(*figures[path]):.1f}%")
        return 1
    print(f"\nevery format module reaches {args.minimum:g}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
