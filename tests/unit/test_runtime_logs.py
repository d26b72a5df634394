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
