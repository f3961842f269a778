"""Non-standard bounce formats of named MTAs and providers, in the order they are tried.

Each module has `NAME` and `analyze(message) -> Findings | None`, starts with a cheap guard
(a header or a phrase that only its format has) and returns None when the message is not
its. The order below is the order of trial: formats that can be confused put the more
specific one first. `generic` is not in the list: it is the chain's plain-text fallback.
"""

from __future__ import annotations

from types import ModuleType

from ..findings import Findings
from ..message import Part
from . import generic

# The known formats, in order of trial. Each entry's module says which MTA it reads.
KNOWN: tuple[ModuleType, ...] = (
    # --- mail providers and sending services ---
    # --- Microsoft, Lotus and mail gateways ---
    # --- Unix MTAs ---
)


def analyze_known(message: Part) -> Findings | None:
    """The first known format that claims the message."""
    for module in KNOWN:
        findings = module.analyze(message)
        if findings is not None:
            if not findings.analyzer:
                findings.analyzer = f"formats.{module.NAME}"
            return findings
    return None


def analyze_generic(message: Part) -> Findings | None:
    """Plain-text bounces of MTAs that no format names."""
    return generic.analyze(message)
