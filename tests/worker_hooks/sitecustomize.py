"""Put on PYTHONPATH by the worker tests (test_analysis_workers.py) for the processes they
start: a message carrying an `X-Test-Analysis:` header makes the analysis misbehave the way
a hostile message could (`hang`: spin on the CPU forever, holding the GIL like a runaway
regular expression; `crash`: the process dies at once, like a segfault or the OOM killer;
`bloat`: 64 MiB more kept by the process, like the leftovers of a huge message).
Fault injection from outside the product code, in real processes."""

import os
import signal

import imap_bouncer.analysis as _analysis

_real = _analysis.analyze
_kept = []  # what `bloat` leaves behind in the process


def _misbehaving(raw, options=None):
    if b"X-Test-Analysis: hang" in raw:
        while True:
            pass
    if b"X-Test-Analysis: crash" in raw:
        os.kill(os.getpid(), signal.SIGKILL)
    if b"X-Test-Analysis: bloat" in raw:
        _kept.append(bytearray(64 << 20))  # 64 MiB touched, kept
    return _real(raw, options)


_analysis.analyze = _misbehaving
