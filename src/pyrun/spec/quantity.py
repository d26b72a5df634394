"""Kubernetes resource quantities (k8s.io/apimachinery/pkg/api/resource).

Grammar (from quantity.go):
    <quantity>   ::= <signedNumber><suffix>
    <suffix>     ::= <binarySI> | <decimalExponent> | <decimalSI>
    <binarySI>   ::= Ki | Mi | Gi | Ti | Pi | Ei
    <decimalSI>  ::= m | "" | k | M | G | T | P | E
    <decimalExponent> ::= "e" <signedNumber> | "E" <signedNumber>
    <numericValue>    ::= <digits> | <digits>.<digits> | <digits>. | .<digits>

Values are exact Fractions; conversion to integers rounds up, as
Quantity.Value() and Quantity.MilliValue() do.
"""
from __future__ import annotations

import math
import re

TYPE_CHECKING = False
if TYPE_CHECKING:  # fractions (with decimal and numbers) is imported on first use, not at import time
    from fractions import Fraction

_QUANTITY = re.compile(
    r"(?P<sign>[+-]?)(?P<num>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
    r"(?:(?P<exp>[eE][+-]?[0-9]+)|(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E))?"
)
_BINARY: dict[str, int] = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL: dict[str, int | tuple[int, int]] = {"m": (1, 1000), "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}
_MAX_EXPONENT = 64  # far beyond any real resource; refuses "1e999999999" before it eats memory
MAX_INT64 = 2**63 - 1  # what a Quantity's Value()/MilliValue() and every cgroup file can hold


def parse_quantity(value: object) -> Fraction:
    """Parse a quantity ("100m", "1.5Gi", "1e3", 2, 0.5) into an exact non-negative Fraction.

    Raises ValueError with a message suitable for `<field>: <message>`.
    """
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"{value!r} is not a quantity (expected a string or a number)")
    from fractions import Fraction

    text = repr(value) if isinstance(value, float) else str(value)
    match = _QUANTITY.fullmatch(text)
    if not match:
        raise ValueError(f'"{text}" is not a quantity')
    amount = Fraction(match["num"])
    if match["exp"]:
        exponent = int(match["exp"][1:])
        if abs(exponent) > _MAX_EXPONENT:
            raise ValueError(f'"{text}" is out of range (exponent {exponent})')
        amount *= Fraction(10) ** exponent
    elif match["suffix"]:
        suffix = match["suffix"]
        factor = _BINARY.get(suffix) or _DECIMAL[suffix]
        amount *= Fraction(*factor) if isinstance(factor, tuple) else factor
    if match["sign"] == "-" and amount != 0:
        raise ValueError(f'"{text}" must not be negative')
    return amount


def int64_problem(amount: int, unit: str) -> str | None:
    """A message when a normalised amount (bytes, millicores) does not fit an int64, else None."""
    if amount > MAX_INT64:
        return f"is too large (at most {MAX_INT64} {unit}: a signed 64-bit integer)"
    return None


def cpu_millis(value: object) -> int:
    """CPU quantity → millicores, rounded up like Quantity.MilliValue() ("0.1" → 100)."""
    return math.ceil(parse_quantity(value) * 1000)


def to_bytes(value: object) -> int:
    """Memory/hugepages quantity → bytes, rounded up like Quantity.Value() ("1.5Gi" → 1610612736)."""
    return math.ceil(parse_quantity(value))


def format_bytes(n: int) -> str:
    """Bytes for display: the largest binary unit that divides exactly, else one decimal ("1.5Gi")."""
    if n < 1024:
        return f"{n}"
    units = ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"]
    for power in range(len(units), 0, -1):
        scale = 1024**power
        if n % scale == 0:
            return f"{n // scale}{units[power - 1]}"
    for power in range(len(units), 0, -1):
        scale = 1024**power
        if n >= scale:
            return f"{n / scale:.1f}{units[power - 1]}"
    return str(n)  # pragma: no cover - unreachable for n >= 1024


def format_cpu(millis: int) -> str:
    """Millicores for display: whole cores as "2", otherwise "250m"."""
    if millis % 1000 == 0:
        return str(millis // 1000)
    return f"{millis}m"
