from click.testing import CliRunner

from pyrun.cgroups import Stats
from pyrun.cli import stats as cli_stats
from pyrun.cli.stats import StatsRow, format_stats_table, human_bytes
from pyrun.config import Config

MI = 1024 * 1024


def test_human_bytes():
    assert [human_bytes(n) for n in (None, 0, 1023, 1024, 64 * MI, 3 << 30)] == \
        ["-", "0B", "1023B", "1.0KiB", "64.0MiB", "3.0GiB"]


def test_format_stats_table():
    rows = [StatsRow("web/nginx", Stats(cpu_usage_ns=1_500_000_000, cpu_nr_throttled=3, cpu_throttled_ns=20_000_000,
                                        memory_usage=10 * MI, memory_working_set=8 * MI, memory_limit=64 * MI,
                                        pids_current=4), 12.345),
            StatsRow("web/sidecar", Stats(memory_usage=MI, hugetlb_usage={"2MB": 4 * MI}))]
    assert format_stats_table(rows).splitlines() == [
        "NAME         CPU %  CPU TIME  THROTTLED  MEM USAGE  WORKING SET  MEM LIMIT  PIDS  HUGETLB",
        "web/nginx    12.3   1.50s     3 (0.02s)  10.0MiB    8.0MiB       64.0MiB    4     -",
        "web/sidecar  -      -         -          1.0MiB     -            max        -     2MB:4.0MiB",
    ]


def test_format_empty_table_has_the_header():
    assert format_stats_table([]).startswith("NAME")


def test_command_prints_one_table(monkeypatch, tmp_path):
    from pyrun.runtime.stats import Usage
    monkeypatch.setattr("pyrun.runtime.api.Runtime.stats",
                        lambda self, pod: [Usage(f"{pod}/c1", 0, Stats(pids_current=4), 50_000_000)])
    result = CliRunner().invoke(cli_stats.stats, ["mypod"], obj=Config(root=tmp_path))
    assert result.exit_code == 0, result.output
    line = result.output.splitlines()[1]
    assert line.startswith("mypod/c1") and line.split()[1] == "5.0" and result.output.split()[-2] == "4"
