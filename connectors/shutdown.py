"""A process-wide stop request: SIGTERM/SIGINT end the run cleanly instead of killing it.

Bytewax 0.21 checks Python signal handlers from its run loop (`run_main` in the worker loop,
`cli_main` in the main thread every millisecond) and tears the dataflow down, exit 1, when a
handler raises, which is what the default SIGINT handler (KeyboardInterrupt) does. While
`handle_signals()` is active the first SIGTERM or SIGINT only sets a flag instead. Every source
of `connectors.inputs` looks at the flag before each batch and ends its partitions (EOF), so the
dataflow drains by itself: in-flight batches run through to the sinks, the final epoch closes
and, with recovery on, its snapshot is committed. A partition that ends this way snapshots its
position as usual, so a restart on the same recovery directory continues after it (a live feed
is not "finished" by a stop). A second signal interrupts at once, the old way.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from types import FrameType

log = logging.getLogger(__name__)

_STOP = threading.Event()
_reason: str | None = None
SIGNALS = (signal.SIGTERM, signal.SIGINT)


def requested() -> bool:
    """Whether the run was asked to stop (the sources end their partitions)."""
    return _STOP.is_set()


def reason() -> str | None:
    """What asked for the stop (a signal name), if anything did."""
    return _reason


def request(why: str) -> None:
    """Ask every source of this process to end its partitions."""
    global _reason
    if not _STOP.is_set():
        _reason = why
        _STOP.set()


def reset() -> None:
    """Forget a stop request (the next run in this process starts normally)."""
    global _reason
    _reason = None
    _STOP.clear()


def _handler(signum: int, _frame: FrameType | None) -> None:
    name = signal.Signals(signum).name
    if _STOP.is_set():
        # Second signal: the operator does not want to wait for the drain.
        raise KeyboardInterrupt(f"{name} received again: stopping at once")
    log.warning("%s received: stopping the sources and draining in-flight batches", name)
    request(name)
    # A sink waiting out a Redis outage cannot drain: it gives up now (exit 75, nothing
    # undelivered acknowledged) instead of after the whole outage budget.
    from connectors.redis_retry import stop_waiting

    stop_waiting()


@contextlib.contextmanager
def handle_signals() -> Iterator[None]:
    """Turn SIGTERM/SIGINT into a stop request while the block runs (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    reset()
    previous = {sig: signal.signal(sig, _handler) for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
