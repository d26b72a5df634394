"""Pure helpers of the benchmark harness (benchmarks/_stats.py): statistics, /proc parsing, tables."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import _stats  # noqa: E402


def test_median_odd_and_even():
    assert _stats.median([3, 1, 2]) == 2
    assert _stats.median([4, 1, 3, 2]) == 2.5


def test_percentile_interpolates_like_numpy():
    values = list(range(1, 11))  # 1..10
    assert _stats.percentile(values, 90) == pytest.approx(9.1)
    assert _stats.percentile(values, 0) == 1
    assert _stats.percentile(values, 100) == 10
    assert _stats.percentile([5.0], 90) == 5.0


def test_percentile_rejects_empty_and_out_of_range():
    with pytest.raises(ValueError):
        _stats.percentile([], 50)
    with pytest.raises(ValueError):
        _stats.percentile([1], 101)


def test_summarize():
    s = _stats.summarize([0.2, 0.1, 0.4, 0.3])
    assert (s.n, s.min, s.max) == (4, 0.1, 0.4)
    assert s.median == pytest.approx(0.25)
    assert s.mean == pytest.approx(0.25)
    assert s.p90 == pytest.approx(0.37)
    assert s.to_dict()["p90"] == s.p90
    with pytest.raises(ValueError):
        _stats.summarize([])


SMAPS_ROLLUP = """\
55d0c0a00000-7ffd5e5f2000 ---p 00000000 00:00 0                          [rollup]
Rss:                 688 kB
Pss:                 123 kB
Pss_Dirty:            60 kB
Shared_Clean:        560 kB
Shared_Dirty:          0 kB
Private_Clean:        40 kB
Private_Dirty:        88 kB
Swap:                  0 kB
THPeligible:           0
"""


def test_parse_smaps_rollup():
    fields = _stats.parse_smaps_rollup(SMAPS_ROLLUP)
    assert fields["Rss"] == 688 and fields["Pss"] == 123 and fields["Pss_Dirty"] == 60
    assert "THPeligible" not in fields  # no unit: not a size
    assert _stats.memory_kib(fields) == {"rss": 688, "pss": 123, "uss": 128}


def test_memory_kib_of_empty_rollup():
    assert _stats.memory_kib({}) == {"rss": 0, "pss": 0, "uss": 0}


IMPORTTIME = """\
import time: self [us] | cumulative | imported package
import time:       158 |        158 |   _io
import time:       328 |       1082 | _frozen_importlib_external
import time:       100 |        100 |     click._compat
import time:       900 |       1000 |   click.core
import time:      2000 |       3000 | click
some other stderr line
"""


def test_parse_importtime():
    entries = _stats.parse_importtime(IMPORTTIME)
    assert [e.module for e in entries] == ["_io", "_frozen_importlib_external", "click._compat", "click.core",
                                           "click"]
    assert [e.depth for e in entries] == [1, 0, 2, 1, 0]
    assert entries[-1].self_us == 2000 and entries[-1].cumulative_us == 3000


def test_top_imports_sorts_by_cumulative_and_filters_by_prefix():
    entries = _stats.parse_importtime(IMPORTTIME)
    assert [e.module for e in _stats.top_imports(entries, 2)] == ["click", "_frozen_importlib_external"]
    assert [e.module for e in _stats.top_imports(entries, 10, prefix="click")] == ["click", "click.core",
                                                                                  "click._compat"]


def test_markdown_table_aligns_numbers_right_and_escapes_pipes():
    table = _stats.markdown_table(["op", "ms"], [["pod create", "12.5"], ["a|b", "-"]])
    assert table.splitlines() == ["| op | ms |", "|---|---:|", "| pod create | 12.5 |", "| a\\|b | - |"]


def test_markdown_table_rejects_ragged_rows():
    with pytest.raises(ValueError):
        _stats.markdown_table(["a", "b"], [["1"]])


def test_formatting_and_verdict():
    assert _stats.fmt_ms(0.1234) == "123.4"
    assert _stats.fmt_mib(1536) == "1.50"
    assert _stats.verdict(100, 150) == "ok"
    assert _stats.verdict(300, 150) == "2.0x over"
    assert _stats.verdict(1, None) == "-"
