"""What the benchmarks read when not told: the shared corpus beside the repository (the
figures the issues quote), else the project's own samples."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def default_folder() -> Path:
    corpus = ROOT.parent / "shared" / "corpus" / "messages"
    return corpus if corpus.is_dir() else ROOT / "tests" / "samples"
