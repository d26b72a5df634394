"""The CRI log format: timestamps, streams, full and partial lines."""
from pyrun.runtime.logs import LineSplitter, format_entry, parse_entry, render_entries, rfc3339_nano

NS = 1_700_000_000_123_456_789


def test_rfc3339_nano_keeps_nine_digits_and_utc():
    assert rfc3339_nano(NS) == "2023-11-14T22:13:20.123456789Z"
    assert rfc3339_nano(1_000_000_000) == "1970-01-01T00:00:01.000000000Z"


def test_complete_lines_are_full_entries():
    s = LineSplitter("stdout")
    assert s.feed(b"a\nb", NS) == [format_entry(NS, "stdout", False, b"a")]
    assert s.feed(b"c\n", NS) == [format_entry(NS, "stdout", False, b"bc")]
    assert s.flush(NS) == []


def test_long_lines_are_split_into_partials():
    s = LineSplitter("stderr", max_line=4)
    out = s.feed(b"abcdefghij\n", NS)
    assert [parse_entry(e).content for e in out] == [b"abcd", b"efgh", b"ij"]
    assert [parse_entry(e).partial for e in out] == [True, True, False]


def test_a_line_of_exactly_max_is_one_full_entry():
    s = LineSplitter("stdout", max_line=4)
    assert [parse_entry(e) .partial for e in s.feed(b"abcd\n", NS)] == [False]


def test_unterminated_output_is_flushed_as_a_full_line():
    s = LineSplitter("stdout")
    assert s.feed(b"no newline", NS) == []
    entry = parse_entry(s.flush(NS)[0])
    assert (entry.stream, entry.partial, entry.content) == ("stdout", False, b"no newline")


def test_render_joins_partials_and_filters_streams():
    lines = [format_entry(NS, "stdout", True, b"ab"), format_entry(NS, "stdout", False, b"cd"),
             format_entry(NS, "stderr", False, b"err")]
    assert render_entries(lines) == b"abcd\nerr\n"
    assert render_entries(lines, streams={"stderr"}) == b"err\n"
    assert render_entries(lines, timestamps=True).startswith(rfc3339_nano(NS).encode() + b" ab")


def test_entry_with_empty_content():
    e = parse_entry(format_entry(NS, "stdout", False, b""))
    assert e.content == b"" and not e.partial


# --- the follower `pyrun logs [-f]` and the CRI's Attach share -----------------------------------

def _line(text: str) -> bytes:
    return format_entry(NS, "stdout", False, text.encode())


class _Clock:
    """The follower's sleep: each call runs the next scripted change to the log (a writer, a rotation)."""

    def __init__(self, *steps):
        self.steps = list(steps)

    def __call__(self, seconds: float) -> None:
        if self.steps:
            self.steps.pop(0)()


def test_without_follow_the_lines_there_now(tmp_path):
    from pyrun.runtime.logs import LogFollower
    log = tmp_path / "0.log"
    log.write_bytes(_line("a") + _line("b") + b"2024 stdout F no newline yet")
    with LogFollower(str(log)) as f:
        assert [parse_entry(x).content for x in f.lines(follow=False)] == [b"a", b"b"]
    with LogFollower(str(tmp_path / "missing.log")) as f:
        assert list(f.lines(follow=False)) == []


def test_from_the_end_only_what_is_written_after_opening(tmp_path):
    from pyrun.runtime.logs import LogFollower
    log = tmp_path / "0.log"
    log.write_bytes(_line("old"))
    follower = LogFollower(str(log), from_end=True, check_every=0)
    with open(log, "ab") as w:
        w.write(_line("new"))
    alive = iter([True, False])
    got = list(follower.lines(running=lambda: next(alive, False)))
    assert [parse_entry(x).content for x in got] == [b"new"]


def test_following_goes_on_in_the_new_file_after_a_rotation(tmp_path):
    """ReopenContainerLog: the kubelet renames the log, the monitor opens a new one at the path. The rest
    of the old file is read first, then the new one from its start; after the exit, one last read."""
    from pyrun.runtime.logs import LogFollower
    log = tmp_path / "0.log"
    log.write_bytes(_line("one"))
    state = {"running": True}

    def rotate():
        with open(log, "ab") as w:
            w.write(_line("two"))  # written before the rename: still read
        log.rename(tmp_path / "0.log.20240101")
        log.write_bytes(_line("three"))

    def exit_():
        with open(log, "ab") as w:
            w.write(_line("four"))  # the last words, then the container is gone
        state["running"] = False

    follower = LogFollower(str(log), check_every=0, sleep=_Clock(rotate, exit_))
    got = [parse_entry(x).content for x in follower.lines(running=lambda: state["running"])]
    follower.close()
    assert got == [b"one", b"two", b"three", b"four"]


def test_a_cancelled_follower_stops_at_once(tmp_path):
    from pyrun.runtime.logs import LogFollower
    log = tmp_path / "0.log"
    log.write_bytes(_line("a"))
    with LogFollower(str(log)) as f:
        assert list(f.lines(running=lambda: True, cancelled=lambda: True)) == []
