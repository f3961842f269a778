"""The analyzer over the shared development corpus, scored by its own tool against the
issue's targets.

The corpus lives outside the repository (../shared relative to the repository root) and must
never be copied into it. Without it these tests are skipped, except in CI (CI=true), where a
missing corpus is a failure: a green run there must mean the targets were checked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from imap_bouncer.analysis import analyze

SHARED = Path(__file__).resolve().parents[2] / "shared"
TRUTH = SHARED / "corpus" / "truth.json"
MESSAGES = SHARED / "corpus" / "messages"
SCORE = SHARED / "tools" / "score.py"

# The targets: (metric of score.py --json, lowest acceptable rate) and the metrics
# that must stay at zero.
AT_LEAST = {
    "detection": 0.995, "addr_recall": 0.995, "addr_precision": 0.995, "hard_soft": 0.99,
    "reason": 0.95, "status_class": 0.99, "complaint": 1.0, "autoreply": 1.0, "delivered": 1.0,
}
AT_MOST = {"false_bounce": 0.0, "misfire": 0.0}

pytestmark = pytest.mark.corpus


def require_corpus() -> None:
    """Skip when the corpus is absent; fail instead in CI, where it must be present."""
    if not (TRUTH.is_file() and SCORE.is_file() and MESSAGES.is_dir()):
        message = f"the shared corpus is missing (looked for {TRUTH} and {SCORE})"
        if os.environ.get("CI") == "true":
            pytest.fail(message + "; CI=true requires it")
        pytest.skip(message)


@pytest.fixture(scope="module")
def scores(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """score.py --json figures for the whole corpus ("all" split)."""
    require_corpus()
    output = tmp_path_factory.mktemp("corpus") / "reports.jsonl"
    with output.open("w", encoding="utf-8") as out:
        for path in sorted(MESSAGES.rglob("*")):
            if path.is_file():
                record = {"source": str(path), **analyze(path.read_bytes()).to_dict()}
                out.write(json.dumps(record, ensure_ascii=False) + "\n")
    result = subprocess.run(
        [sys.executable, str(SCORE), str(TRUTH), str(output), "--json"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)["splits"]["all"]
    assert figures["counts"].get("missing output", 0) == 0
    return figures


def describe(figure: dict) -> str:
    return f"{figure['rate']} ({figure['num']}/{figure['den']})"


@pytest.mark.parametrize(("metric", "target"), sorted(AT_LEAST.items()))
def test_rate_at_least(scores: dict, metric: str, target: float) -> None:
    figure = scores[metric]
    assert figure["den"] > 0, f"{metric}: nothing to score"
    assert figure["rate"] >= target, f"{metric} {describe(figure)} < {target}"


@pytest.mark.parametrize(("metric", "ceiling"), sorted(AT_MOST.items()))
def test_rate_at_most(scores: dict, metric: str, ceiling: float) -> None:
    figure = scores[metric]
    assert figure["rate"] is None or figure["rate"] <= ceiling, \
        f"{metric} {describe(figure)} > {ceiling}"


@pytest.mark.parametrize(("ci", "outcome"), [("true", pytest.fail.Exception),
                                             ("", pytest.skip.Exception)])
def test_missing_corpus(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, ci: str,
                        outcome: type[BaseException]) -> None:
    monkeypatch.setattr(sys.modules[__name__], "TRUTH", tmp_path / "absent" / "truth.json")
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="corpus is missing"):
        require_corpus()
