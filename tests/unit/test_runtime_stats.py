"""The CPU rate between two cgroup samples (the CRI's usage_nano_cores, `pyrun stats --watch`'s CPU %),
computed once, in pyrun.runtime.stats."""
from __future__ import annotations

from pyrun.runtime.stats import CpuRates, Usage, cpu_percent, cpu_rate

S = 1_000_000_000


def test_the_rate_is_nanocores_between_two_samples():
    assert cpu_rate(None, 10 * S, 5 * S) is None                  # no previous sample
    assert cpu_rate((10 * S, 0), 12 * S, 1 * S) == S // 2          # 1 s of CPU in 2 s: half a core
    assert cpu_rate((10 * S, 0), 11 * S, 2 * S) == 2 * S           # two cores busy
    assert cpu_rate((10 * S, 5), 10 * S, 6) is None                # no time passed
    assert cpu_rate((10 * S, 5 * S), 11 * S, 1 * S) is None        # the counter went back (a new cgroup)


def test_percent_is_of_one_cpu():
    assert cpu_percent(S // 2) == 50.0 and cpu_percent(2 * S) == 200.0 and cpu_percent(None) is None
    assert Usage("c", 0, None, S // 4).cpu_percent == 25.0


def test_rates_are_kept_per_key_and_forgotten():
    rates = CpuRates()
    assert rates.sample("a", 0, 0) is None and rates.sample("pod:p", 0, 0) is None
    assert rates.sample("a", S, S // 10) == S // 10
    assert rates.sample("a", 2 * S, None) is None  # an unreadable cgroup keeps the previous sample
    assert rates.sample("a", 2 * S, S // 10) == 0
    rates.forget("a")
    assert rates.sample("a", 3 * S, S) is None
    rates.sample("b", 0, 0)
    rates.forget_except({"a"})
    assert len(rates) == 1
