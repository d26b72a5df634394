"""Capability names and the set a container keeps (pyrun.linux.caps, pure part)."""
from __future__ import annotations

import pytest

from pyrun.linux.caps import (CAPABILITIES, DEFAULT_CAPABILITIES, ambient_capabilities, cap_number,
                                container_capabilities,
                                held_capabilities, normalize)


def test_kernel_numbering():
    assert cap_number("CHOWN") == 0 and cap_number("NET_BIND_SERVICE") == 10 and cap_number("SYS_ADMIN") == 21
    assert cap_number("cap_setfcap") == 31 and cap_number("CHECKPOINT_RESTORE") == 40 == len(CAPABILITIES) - 1
    with pytest.raises(ValueError):
        cap_number("ALL")


@pytest.mark.parametrize("name, expected", [("net_raw", "NET_RAW"), ("CAP_NET_RAW", "NET_RAW"), ("ALL", "ALL"),
                                            ("all", "ALL"), ("NET_BIND_SERVCE", None), ("", None)])
def test_normalize(name, expected):
    assert normalize(name) == expected


def _order(names):
    return sorted(names, key=CAPABILITIES.index)


@pytest.mark.parametrize("add, drop, expected", [
    ((), (), _order(DEFAULT_CAPABILITIES)),
    ((), ("NET_RAW",), _order(set(DEFAULT_CAPABILITIES) - {"NET_RAW"})),
    (("NET_ADMIN",), (), _order(set(DEFAULT_CAPABILITIES) | {"NET_ADMIN"})),
    (("NET_BIND_SERVICE",), ("ALL",), ["NET_BIND_SERVICE"]),
    ((), ("ALL",), []),
    (("NET_RAW",), ("NET_RAW",), _order(DEFAULT_CAPABILITIES)),  # add wins over drop (containerd)
    (("ALL",), ("CHOWN",), list(CAPABILITIES)),
    (("cap_sys_time",), ("all",), ["SYS_TIME"]),
])
def test_container_capabilities(add, drop, expected):
    assert container_capabilities(add, drop) == expected


def test_privileged_gets_every_capability_of_the_kernel():
    assert container_capabilities((), ("ALL",), privileged=True) == list(CAPABILITIES)
    assert container_capabilities(privileged=True, last_cap=37) == list(CAPABILITIES[:38])


def test_held_capabilities_reads_cap_prm(tmp_path):
    status = tmp_path / "status"
    status.write_text("Name:\tx\nCapInh:\t0000000000000000\nCapPrm:\t0000000000000401\nCapEff:\t0\n")
    assert held_capabilities(str(status)) == ["CHOWN", "NET_BIND_SERVICE"]


def test_ambient_is_what_was_added_and_kept():
    kept = container_capabilities(("NET_BIND_SERVICE", "NET_ADMIN"), ("ALL",))
    assert ambient_capabilities(kept, ("NET_BIND_SERVICE", "NET_ADMIN")) == ["NET_BIND_SERVICE", "NET_ADMIN"]
    assert ambient_capabilities(container_capabilities(), ()) == []  # the default set is not ambient
    assert ambient_capabilities(["CHOWN", "KILL"], ("all",)) == ["CHOWN", "KILL"]
    assert ambient_capabilities(["CHOWN"], ("cap_net_raw",)) == []
