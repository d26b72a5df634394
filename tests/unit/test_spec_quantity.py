"""Kubernetes resource.Quantity parsing and the integer conversions pyrun uses."""
from __future__ import annotations

from fractions import Fraction

import pytest

from pyrun.spec.quantity import cpu_millis, format_bytes, format_cpu, parse_quantity, to_bytes


@pytest.mark.parametrize("text, expected", [
    ("0", 0), ("1", 1), ("+1", 1), ("-0", 0), ("100m", Fraction(1, 10)), ("0.1", Fraction(1, 10)),
    (".5", Fraction(1, 2)), ("5.", 5), ("1.5", Fraction(3, 2)),
    ("1e3", 1000), ("1E3", 1000), ("1e-3", Fraction(1, 1000)), ("1e+3", 1000), ("2.5e2", 250),
    ("1k", 1000), ("1M", 10**6), ("1G", 10**9), ("1T", 10**12), ("1P", 10**15), ("1E", 10**18),
    ("1Ki", 1024), ("1Mi", 2**20), ("1.5Gi", 3 * 2**29), ("1Ti", 2**40), ("1Pi", 2**50), ("1Ei", 2**60),
    (2, 2), (0.5, Fraction(1, 2)), (1e3, 1000),
])
def test_parse_quantity(text, expected):
    assert parse_quantity(text) == expected


@pytest.mark.parametrize("bad", [
    "12XB", "", "Mi", "1 Mi", " 1", "1i", "1KI", "1mi", "1.2.3", "e3", "1e", "1e3Mi", "0x10", "1_000",
    "--1", "1Gb", "ten", None, True, [], {}, float("inf"), float("nan"),
])
def test_not_a_quantity(bad):
    with pytest.raises(ValueError, match="is not a quantity"):
        parse_quantity(bad)


@pytest.mark.parametrize("negative", ["-1", "-100m", "-1Gi", -1, -0.5])
def test_negative_refused(negative):
    with pytest.raises(ValueError, match="must not be negative"):
        parse_quantity(negative)


def test_huge_exponent_refused_without_computing_it():
    with pytest.raises(ValueError, match="out of range"):
        parse_quantity("1e999999999")


def test_message_names_the_value():
    with pytest.raises(ValueError) as info:
        parse_quantity("12XB")
    assert str(info.value) == '"12XB" is not a quantity'


@pytest.mark.parametrize("text, millis", [
    ("0.1", 100), ("100m", 100), ("1", 1000), ("2", 2000), ("1.5", 1500), (0.25, 250), ("1e3", 1_000_000),
    ("0.0001", 1),  # MilliValue rounds up
    ("1.0001", 1001), ("250m", 250), ("0", 0), ("1k", 1_000_000),
])
def test_cpu_millis(text, millis):
    assert cpu_millis(text) == millis


@pytest.mark.parametrize("text, n", [
    ("128Mi", 128 * 2**20), ("1.5Gi", 1610612736), ("1G", 10**9), ("1e3", 1000), ("100m", 1),  # rounds up
    ("0.5", 1), ("64", 64), (1024, 1024), ("2Mi", 2097152),
])
def test_to_bytes(text, n):
    assert to_bytes(text) == n


@pytest.mark.parametrize("n, text", [
    (0, "0"), (512, "512"), (1024, "1Ki"), (128 * 2**20, "128Mi"), (1610612736, "1536Mi"), (2**30, "1Gi"),
    (1500, "1.5Ki"), (int(2.5 * 2**30) + 1, "2.5Gi"),
])
def test_format_bytes(n, text):
    assert format_bytes(n) == text


@pytest.mark.parametrize("millis, text", [(0, "0"), (100, "100m"), (1000, "1"), (1500, "1500m"), (2000, "2")])
def test_format_cpu(millis, text):
    assert format_cpu(millis) == text


def test_format_round_trips_through_parse():
    for n in (1, 1024, 3 * 2**20, 5 * 2**30):
        assert to_bytes(format_bytes(n)) == n
    for m in (1, 100, 1000, 2500):
        assert cpu_millis(format_cpu(m)) == m
