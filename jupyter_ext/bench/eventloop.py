"""Event loops for timing: microsecond timer wake-ups, and the fastest loop installed.

asyncio's epoll selector rounds every wait up to a whole millisecond (epoll_wait counts in
ms), so a timer fires 0-1 ms late: 0.5 ms at the median, the whole error budget of a harness
that is meant to be exact to 1 ms. `PreciseSelector` waits on the epoll descriptor with
select(), whose timeout counts in microseconds, then collects the events without waiting.
`fast_loop` is uvloop where installed (its I/O path costs a fraction of asyncio's per
event, and the client's clock is read per event; its timers keep whole milliseconds, which
only shifts when an open-loop arrival is sent, and that shift is recorded as queue time).
"""

from __future__ import annotations

import asyncio
import select
import selectors
from typing import Callable


class PreciseSelector(selectors.EpollSelector):
    """An epoll selector whose timed waits end within microseconds of their timeout. With
    `spin_s` > 0 the last `spin_s` of a wait polls instead of sleeping: a sleeping core of a
    virtual machine takes a few hundred microseconds to wake (for a process with a core of
    its own, such as the stand-in server of benchmarks/harness_fidelity.py)."""

    def __init__(self, spin_s: float = 0.0) -> None:
        super().__init__()
        self.spin_s = spin_s

    def select(self, timeout: float | None = None):
        if self.fileno() >= 1024:  # beyond select()'s FD_SETSIZE: epoll's own (ms) wait
            return super().select(timeout)
        if timeout is None or timeout > self.spin_s:
            # the epoll descriptor is readable while any watched descriptor is ready
            try:
                select.select([self.fileno()], [], [], None if timeout is None else timeout - self.spin_s)
            except InterruptedError:
                pass
        return super().select(0)


def precise_loop(spin_s: float = 0.0) -> asyncio.AbstractEventLoop:
    """An asyncio loop on `PreciseSelector`: for code whose timers are the measurement."""
    return asyncio.SelectorEventLoop(PreciseSelector(spin_s))


def fast_loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop's loop where it is installed, else asyncio's on `PreciseSelector`."""
    try:
        import uvloop
    except ImportError:
        return precise_loop
    return uvloop.new_event_loop


def run(coro, loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None):
    """`asyncio.run(coro)` on a loop from `loop_factory` (default: `fast_loop_factory()`)."""
    factory = loop_factory or fast_loop_factory()
    if hasattr(asyncio, "Runner"):  # Python >= 3.11 (Ctrl-C cancels the main task, as asyncio.run)
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(coro)
    loop = factory()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
