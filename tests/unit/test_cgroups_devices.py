"""pyrun.cgroups.devices: the allow list, its v1 lines and its v2 eBPF program (run in a tiny interpreter)."""
import struct

import pytest

from pyrun import explain
from pyrun.cgroups import CgroupPath, Limits
from pyrun.cgroups import devices as d
from pyrun.errors import CgroupError

from _cgroups_unit_helpers import fake_tree, layout

R, W, M = d.ACC_READ, d.ACC_WRITE, d.ACC_MKNOD
CHAR, BLOCK = d.DEV_CHAR, d.DEV_BLOCK


def allowed(rules, dev_type, major, minor, access):
    return d.run_program(d.encode(d.program(rules)), dev_type, major, minor, access) == 1


DEFAULT = d.container_rules()


@pytest.mark.parametrize("major,minor", [(1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 1), (5, 2),
                                         (136, 0), (136, 4711)])
def test_default_allows_the_runc_devices(major, minor):
    assert allowed(DEFAULT, CHAR, major, minor, R | W)
    assert allowed(DEFAULT, CHAR, major, minor, R)


@pytest.mark.parametrize("dev_type,major,minor", [(BLOCK, 7, 0), (CHAR, 10, 200), (CHAR, 4, 1), (BLOCK, 252, 0),
                                                  (CHAR, 1, 1), (CHAR, 1, 2), (CHAR, 5, 3), (BLOCK, 1, 3)])
def test_default_denies_opening_other_devices_but_allows_mknod(dev_type, major, minor):
    assert not allowed(DEFAULT, dev_type, major, minor, R)
    assert not allowed(DEFAULT, dev_type, major, minor, W)
    assert not allowed(DEFAULT, dev_type, major, minor, R | W)
    assert allowed(DEFAULT, dev_type, major, minor, M)
    assert not allowed(DEFAULT, dev_type, major, minor, M | R)  # mknod + open at once: not a subset


def test_requested_device_with_its_permissions():
    rules = d.container_rules(requested=(d.DeviceRule("c", 10, 200, "rw"), d.DeviceRule("b", 7, 0, "r")))
    assert allowed(rules, CHAR, 10, 200, R | W)
    assert allowed(rules, BLOCK, 7, 0, R)
    assert not allowed(rules, BLOCK, 7, 0, W)
    assert not allowed(rules, BLOCK, 7, 1, R)
    assert not allowed(rules, CHAR, 7, 0, R)  # the type matters


def test_privileged_allows_everything():
    rules = d.container_rules(privileged=True)
    assert rules.allows_all
    for dev_type in (CHAR, BLOCK):
        assert allowed(rules, dev_type, 7, 0, R | W | M)
    assert d.render_v1(rules) == [("devices.allow", "a")]


def test_empty_rules_deny_everything():
    assert not allowed(d.DeviceRules(()), CHAR, 1, 3, R)


def test_v1_lines_deny_first_then_allow_in_order():
    lines = d.render_v1(DEFAULT)
    assert lines[0] == ("devices.deny", "a")
    assert lines[1:4] == [("devices.allow", "c *:* m"), ("devices.allow", "b *:* m"),
                          ("devices.allow", "c 1:3 rwm")]
    assert ("devices.allow", "c 136:* rwm") in lines
    assert not any("10:200" in v for _, v in lines)  # tun only when asked


def test_program_encoding_is_struct_bpf_insn():
    code = d.encode(d.program(DEFAULT))
    assert len(code) % 8 == 0
    # r2 = *(u32 *)(r1 + 0): code 0x61, dst 2, src 1 in the high nibble
    assert code[:8] == bytes([0x61, 0x12, 0, 0, 0, 0, 0, 0])
    assert struct.unpack("<BBhi", code[8:16]) == (0x54, 0x02, 0, 0xFFFF)  # r2 &= 0xffff
    assert code[-16:] == bytes([0xB4, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0])  # r0 = 0; exit
    # every jump lands inside the program
    n = len(code) // 8
    for pc in range(n):
        op, _, off, _ = struct.unpack_from("<BBhi", code, pc * 8)
        if op in (d.JMP_JNE_K, d.JMP_JNE_X):
            assert 0 < pc + 1 + off < n


@pytest.mark.parametrize("kwargs", [{"type": "x"}, {"type": "c", "access": "rx"}, {"type": "c", "access": "rr"},
                                    {"type": "c", "access": ""}, {"type": "c", "major": 1 << 32}])
def test_bad_rules_are_refused(kwargs):
    with pytest.raises(CgroupError):
        d.DeviceRule(**kwargs)


def test_parse_permissions():
    assert d.parse_permissions("") == "rwm"
    assert d.parse_permissions("mr") == "rm"
    with pytest.raises(CgroupError, match="permissions 'rx'"):
        d.parse_permissions("rx")


def test_device_numbers_too_large_for_the_program_are_refused():
    with pytest.raises(CgroupError, match="too large"):
        d.program(d.DeviceRules((d.DeviceRule("c", 1 << 31, 0),)))


def test_devices_controller_lives_on_v1_in_hybrid_and_is_core_in_v2():
    assert layout("hybrid").hierarchy_for("devices").mount_point == "/sys/fs/cgroup/devices"
    assert layout("v2").hierarchy_for("devices").version == 2
    assert layout("v1").hierarchy_for("devices") is None  # this v1 fixture mounts no devices hierarchy


def test_driver_writes_v1_rules_into_the_container_cgroup(tmp_path):
    rec = explain.record()
    try:
        tree = fake_tree(tmp_path, "hybrid")
        ctr = CgroupPath.parse("/pyrun/kubepods/pod1/c1")
        tree.cgroups.create(ctr, Limits(devices=DEFAULT))
    finally:
        explain.stop_recording()
    d_dir = tmp_path / "devices/pyrun/kubepods/pod1/c1"
    deny = rec.index(f"echo a > {d_dir}/devices.deny")
    assert rec.index(f"echo 'c 1:3 rwm' > {d_dir}/devices.allow") > deny
    assert (d_dir / "devices.allow").read_text() == "c 136:* rwm"  # the last line written
    assert not (tmp_path / "devices/pyrun/kubepods/pod1/devices.deny").exists()  # the pod level inherits


def test_driver_fails_closed_without_a_devices_controller(tmp_path):
    tree = fake_tree(tmp_path, "v1")
    with pytest.raises(CgroupError, match="`devices` is not available"):
        tree.cgroups.create(CgroupPath.parse("/pyrun/c1"), Limits(devices=DEFAULT))
    assert not (tmp_path / "memory/pyrun/c1").exists()  # checked before anything is made
