"""What the benchmarks read when not told: the shared corpus beside the repository (the
figures the issues quote), else the project's own samples."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def default_folder() -> Path:
    corpus = ROOT.parent / "shared" / "corpus" / "messages"
    return corpus if corpus.is_dir() else ROOT / "tests" / "samples"


# A sample set's manifest and notes sit beside its messages: they are not mail.
NOT_MESSAGES = (".json", ".md", ".py", ".csv")


def message_files(folder: Path) -> list[Path]:
    """The message files below a folder, in order: hidden files and notes left out."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")
                  and p.suffix.lower() not in NOT_MESSAGES)
