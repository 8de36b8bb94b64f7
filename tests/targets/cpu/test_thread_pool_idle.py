"""Idle pool workers block (a short spin, then a futex wait): a process holding many of them uses
no CPU between runs, so other work, other processes and the process's exit are not slowed."""

from __future__ import annotations

import resource
import time

from irc.targets.cpu import thread_pool
from tests.targets.cpu.test_thread_pool import _counting_module


def _cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def test_the_idle_spin_is_short():
    # pause is 10 to 100 ns (95 ns on Zen 3): the spin stays under a millisecond
    assert thread_pool.SPIN_BEFORE_SLEEP * 100e-9 <= 1e-3


def test_idle_workers_use_no_cpu():
    lib, bench, counts = _counting_module()
    bench(200, 9)  # eight workers, busy a moment ago
    assert counts[: 9 * 8 : 8].tolist() == [200] * 9
    time.sleep(0.05)  # longer than any worker's spin
    before = _cpu_seconds()
    time.sleep(0.5)
    idle = _cpu_seconds() - before
    # a spinning worker would burn up to a core each; sleeping ones burn nothing (50 ms: slack
    # for whatever else this process's threads do meanwhile)
    assert idle < 0.05, f"{idle:.3f} s of CPU in 0.5 s with the pool idle"
    bench(50, 9)  # sleeping workers are woken by the next job, and every chunk still runs once
    assert counts[: 9 * 8 : 8].tolist() == [250] * 9
    del lib
