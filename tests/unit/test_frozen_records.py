"""pyrun.frozen's records behave as the dataclasses they replaced (issue #14: no dataclass cost at import)."""
from __future__ import annotations

import copy
import dataclasses
import pickle
import subprocess
import sys

import pytest

from pyrun.frozen import Frozen, Record, as_dict, field, field_names, replace


class Point(Frozen):
    """A point."""
    x: int
    y: int = 0
    tags: dict = field(default_factory=dict)
    note: str | None = field(default=None, compare=False, repr=False)


@dataclasses.dataclass(frozen=True)
class PointDC:
    """A point."""
    x: int
    y: int = 0
    tags: dict = dataclasses.field(default_factory=dict)
    note: str | None = dataclasses.field(default=None, compare=False, repr=False)


class Cell(Frozen):
    row: int
    col: int = 1


class Cursor(Record):
    at: int
    seen: list = field(default_factory=list)


class Doubled(Frozen):
    v: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "v", self.v * 2)


def test_construction_repr_and_equality_as_a_dataclass():
    p, d = Point(1, note="n"), PointDC(1, note="n")
    assert repr(p).replace("Point(", "PointDC(") == repr(d)
    assert (p.x, p.y, p.tags, p.note) == (d.x, d.y, d.tags, d.note)
    assert Point(1) == Point(1, 0, {}, note="other")  # note does not compare
    assert Point(1) != Point(2) and Point(1) != PointDC(1)
    assert Point(1).tags is not Point(1).tags  # a fresh default each time
    assert "tags" not in Point.__dict__ and Point.y == 0  # as dataclass leaves defaults on the class
    assert Point.__doc__ == "A point."


def test_bad_arguments_raise_type_error():
    with pytest.raises(TypeError, match="missing 1 required positional argument: 'x'"):
        Point()
    with pytest.raises(TypeError, match="unexpected keyword argument 'z'"):
        Point(1, z=2)
    with pytest.raises(TypeError, match="multiple values for argument 'x'"):
        Point(1, x=2)
    with pytest.raises(TypeError, match="positional arguments"):
        Cell(1, 2, 3)


def test_frozen_records_hash_and_refuse_assignment():
    assert hash(Cell(1)) == hash(Cell(1, 1)) and {Cell(1): "a"}[Cell(1, 1)] == "a"
    with pytest.raises(dataclasses.FrozenInstanceError):
        Cell(1).row = 2  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        del Cell(1).row
    with pytest.raises(TypeError):
        hash(Point(1))  # a dict field: unhashable, as with dataclass


def test_mutable_records_assign_and_do_not_hash():
    c = Cursor(1)
    c.at = 2
    c.seen.append(3)
    assert c == Cursor(2, [3])
    assert Cursor.__hash__ is None


def test_replace_fields_and_post_init():
    p = Point(1, tags={"a": "b"})
    assert replace(p, y=5) == Point(1, 5, {"a": "b"})
    assert dataclasses.replace(p, y=5) == Point(1, 5, {"a": "b"})
    assert replace(PointDC(1), y=2) == PointDC(1, 2)  # a real dataclass too
    assert field_names(Point) == field_names(p) == ("x", "y", "tags", "note")
    assert [f.name for f in dataclasses.fields(Point)] == list(field_names(Point))
    assert dataclasses.is_dataclass(p) and dataclasses.asdict(p) == dataclasses.asdict(PointDC(1, tags={"a": "b"}))
    nested = Cell(row=(Point(1), Point(2, tags={"k": "v"})))  # type: ignore[arg-type]
    assert as_dict(nested) == dataclasses.asdict(nested) == {"row": ({"x": 1, "y": 0, "tags": {}, "note": None},
                                                                     {"x": 2, "y": 0, "tags": {"k": "v"}, "note": None}),
                                                             "col": 1}
    assert Doubled(2).v == 4 and replace(Doubled(2), v=1).v == 2  # __post_init__ runs again, as dataclasses.replace


def test_copy_and_pickle_keep_the_record():
    p = Point(1, 2, {"a": "b"}, note="n")
    for q in (copy.copy(p), copy.deepcopy(p), pickle.loads(pickle.dumps(p))):
        assert q == p and q.note == "n"


def _imported(modules: str, watched: tuple[str, ...]) -> str:
    code = f"import sys; import {modules}; print(' '.join(m for m in {watched!r} if m in sys.modules))"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


def test_the_records_a_command_reads_need_no_dataclasses_import():
    assert _imported("pyrun.runtime.api, pyrun.cli.commands, pyrun.spec.pod, pyrun.netns.dns, pyrun.runtime.monitor",
                     ("dataclasses", "inspect")) == ""


def test_pod_ls_rm_and_exec_import_no_typing_or_threading():
    """(typing only under TYPE_CHECKING; _thread's lock instead of threading's)"""
    assert _imported("pyrun.cli.main, pyrun.cli.commands, pyrun.runtime.api, pyrun.runtime.gc, pyrun.runtime.nsexec",
                     ("typing", "threading")) == ""
