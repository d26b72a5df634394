"""The devices controller: which device nodes a container may open or create (pure).

A container's image (or a process with CAP_MKNOD) can ship any device node; only the
device cgroup stops it from opening the host's disks or ttys through one. pyrun allows
what runc/containerd allow by default (runc libcontainer/specconv AllowedDevices):

    c *:* m, b *:* m          mknod of any node (opening it is a separate check)
    c 1:3 null, 1:5 zero, 1:7 full, 1:8 random, 1:9 urandom     rwm
    c 5:0 tty, 5:1 console, 5:2 ptmx, c 136:* pts              rwm

plus the devices a container asks for (CRI ContainerConfig.devices), and everything
for a privileged container. /dev/net/tun (c 10:200) is allowed only when asked for.

Two renderings of the same rules:

- cgroup v1 (Documentation/admin-guide/cgroup-v1/devices.rst): a new cgroup inherits
  its parent's list, so pyrun writes `a` to devices.deny, then each rule to
  devices.allow ("c 1:3 rwm"). A child can never get more than its parent.
- cgroup v2 (cgroup-v2.rst "Device controller"): no files, a BPF_PROG_TYPE_CGROUP_DEVICE
  program attached to the cgroup. Its context is struct bpf_cgroup_dev_ctx
  {u32 access_type = access << 16 | type; u32 major; u32 minor}; it returns 1 to allow,
  0 to deny (EPERM). With BPF_F_ALLOW_MULTI the programs of every ancestor run too and
  all must allow. The encoding follows runc's libcontainer/cgroups/devices/devicefilter:
  the rules in order, the first that matches allows, the default denies.
"""
from __future__ import annotations

import struct

from pyrun.errors import CgroupError
from pyrun.frozen import Frozen

CONTROLLER = "devices"
WILDCARD = -1

# The bpf_cgroup_dev_ctx values (include/uapi/linux/bpf.h).
DEV_BLOCK, DEV_CHAR = 1, 2
ACC_MKNOD, ACC_READ, ACC_WRITE = 1, 2, 4
_TYPE_BITS = {"b": DEV_BLOCK, "c": DEV_CHAR}
_ACCESS_BITS = {"m": ACC_MKNOD, "r": ACC_READ, "w": ACC_WRITE}


class DeviceRule(Frozen):
    """One allow rule: type "a" (all), "c" or "b"; major/minor WILDCARD (-1) for `*`; access from "rwm"."""

    type: str
    major: int = WILDCARD
    minor: int = WILDCARD
    access: str = "rwm"

    def __post_init__(self) -> None:
        if self.type not in ("a", "b", "c"):
            raise CgroupError(f"device rule type {self.type!r} must be a, b or c")
        if not self.access or set(self.access) - set("rwm") or len(set(self.access)) != len(self.access):
            raise CgroupError(f"device rule access {self.access!r} must be letters of 'rwm', each at most once")
        for name, value in (("major", self.major), ("minor", self.minor)):
            if value != WILDCARD and not 0 <= value < 1 << 32:
                raise CgroupError(f"device rule {name} {value} is out of range")

    def v1_line(self) -> str:
        """The devices.allow line ("c 1:3 rwm"; "a" alone means everything)."""
        if self.type == "a":
            return "a *:* rwm" if self.access == "rwm" else f"a *:* {self.access}"
        return f"{self.type} {_num(self.major)}:{_num(self.minor)} {self.access}"


def _num(value: int) -> str:
    return "*" if value == WILDCARD else str(value)


DEFAULT_RULES = (
    DeviceRule("c", WILDCARD, WILDCARD, "m"),
    DeviceRule("b", WILDCARD, WILDCARD, "m"),
    DeviceRule("c", 1, 3), DeviceRule("c", 1, 5), DeviceRule("c", 1, 7),
    DeviceRule("c", 1, 8), DeviceRule("c", 1, 9),
    DeviceRule("c", 5, 0), DeviceRule("c", 5, 1), DeviceRule("c", 5, 2),
    DeviceRule("c", 136, WILDCARD),
)
ALLOW_ALL = (DeviceRule("a"),)


class DeviceRules(Frozen):
    """What a cgroup may access: `rules` are the allow list; everything else is denied."""

    rules: tuple[DeviceRule, ...]

    @property
    def allows_all(self) -> bool:
        return any(r.type == "a" and r.access == "rwm" for r in self.rules)


def container_rules(privileged: bool = False, requested: tuple[DeviceRule, ...] = ()) -> DeviceRules:
    """The rules of a container: everything when privileged, else the defaults and what it asked for."""
    if privileged:
        return DeviceRules(ALLOW_ALL)
    return DeviceRules(DEFAULT_RULES + tuple(requested))


def parse_permissions(text: str, field: str = "permissions") -> str:
    """CRI Device.permissions ("rwm", "r", ...; empty means "rwm") in the canonical r, w, m order."""
    text = text or "rwm"
    if set(text) - set("rwm"):
        raise CgroupError(f"{field} {text!r}: only the letters r, w and m are allowed")
    return "".join(c for c in "rwm" if c in text)


# --- cgroup v1 -----------------------------------------------------------------------------------

def render_v1(rules: DeviceRules) -> list[tuple[str, str]]:
    """(file, value) writes in order: deny everything inherited, then allow each rule."""
    if rules.allows_all:
        return [("devices.allow", "a")]
    return [("devices.deny", "a")] + [("devices.allow", r.v1_line()) for r in rules.rules]


# --- cgroup v2: the eBPF program -----------------------------------------------------------------

# Opcodes (include/uapi/linux/bpf_common.h, bpf.h): class | op | source.
LDX_MEM_W = 0x61  # BPF_LDX | BPF_MEM | BPF_W      dst = *(u32 *)(src + off)
ALU_AND_K = 0x54  # BPF_ALU | BPF_AND | BPF_K      dst &= imm (32 bit)
ALU_RSH_K = 0x74  # BPF_ALU | BPF_RSH | BPF_K      dst >>= imm (32 bit)
ALU_MOV_K = 0xB4  # BPF_ALU | BPF_MOV | BPF_K      dst = imm
ALU_MOV_X = 0xBC  # BPF_ALU | BPF_MOV | BPF_X      dst = src
JMP_JNE_K = 0x55  # BPF_JMP | BPF_JNE | BPF_K      if dst != imm: pc += off
JMP_JNE_X = 0x5D  # BPF_JMP | BPF_JNE | BPF_X      if dst != src: pc += off
JMP_EXIT = 0x95  # BPF_JMP | BPF_EXIT             return r0

R0, R1, R2, R3, R4, R5 = range(6)  # r1 = ctx on entry; r2 type, r3 access, r4 major, r5 minor


class Insn(Frozen):
    code: int
    dst: int = 0
    src: int = 0
    off: int = 0
    imm: int = 0

    def encode(self) -> bytes:
        """struct bpf_insn: u8 code; u8 dst_reg:4, src_reg:4 (little endian); s16 off; s32 imm."""
        return struct.pack("<BBhi", self.code, (self.src << 4) | self.dst, self.off, self.imm)


_PROLOGUE = (
    Insn(LDX_MEM_W, R2, R1, 0),        # r2 = ctx->access_type
    Insn(ALU_AND_K, R2, imm=0xFFFF),   # r2 = device type
    Insn(LDX_MEM_W, R3, R1, 0),        # r3 = ctx->access_type
    Insn(ALU_RSH_K, R3, imm=16),       # r3 = requested access bits
    Insn(LDX_MEM_W, R4, R1, 4),        # r4 = ctx->major
    Insn(LDX_MEM_W, R5, R1, 8),        # r5 = ctx->minor
)


def _rule_block(rule: DeviceRule) -> list[Insn]:
    """The checks of one rule, each jumping past the block on a mismatch, then `return 1`.

    The jump offsets are filled in by the caller (they count the instructions left in the block).
    """
    checks: list[Insn] = []
    if rule.type != "a":
        checks.append(Insn(JMP_JNE_K, R2, imm=_TYPE_BITS[rule.type]))
    bits = sum(_ACCESS_BITS[c] for c in rule.access)
    if bits != ACC_MKNOD | ACC_READ | ACC_WRITE:
        # allowed only if requested & bits == requested
        checks += [Insn(ALU_MOV_X, R1, R3), Insn(ALU_AND_K, R1, imm=bits), Insn(JMP_JNE_X, R1, R3)]
    if rule.major != WILDCARD:
        checks.append(Insn(JMP_JNE_K, R4, imm=rule.major))
    if rule.minor != WILDCARD:
        checks.append(Insn(JMP_JNE_K, R5, imm=rule.minor))
    block = checks + [Insn(ALU_MOV_K, R0, imm=1), Insn(JMP_EXIT)]
    return [Insn(i.code, i.dst, i.src, len(block) - n - 1, i.imm) if i.code in (JMP_JNE_K, JMP_JNE_X) else i
            for n, i in enumerate(block)]


def _imm32(value: int) -> int:
    """A u32 value as the s32 imm field (the kernel compares the zero-extended register with it sign-extended,
    so majors/minors >= 2**31 cannot be expressed: refuse them)."""
    if value >= 1 << 31:
        raise CgroupError(f"device number {value} is too large for a cgroup v2 device rule")
    return value


def program(rules: DeviceRules) -> list[Insn]:
    """The BPF_PROG_TYPE_CGROUP_DEVICE program for `rules`: first match allows, default deny."""
    insns = list(_PROLOGUE)
    for rule in rules.rules:
        _imm32(rule.major if rule.major != WILDCARD else 0)
        _imm32(rule.minor if rule.minor != WILDCARD else 0)
        insns += _rule_block(rule)
    return insns + [Insn(ALU_MOV_K, R0, imm=0), Insn(JMP_EXIT)]


def encode(insns: list[Insn]) -> bytes:
    return b"".join(i.encode() for i in insns)


def describe_v2(rules: DeviceRules) -> str:
    """One line for explain mode: what the attached program allows."""
    return "; ".join(r.v1_line() for r in rules.rules) + "; default deny"


def run_program(code: bytes, dev_type: int, major: int, minor: int, access: int) -> int:
    """Interpret the few opcodes program() emits (for tests): the program's return value."""
    ctx = struct.pack("<III", (access << 16) | dev_type, major, minor)
    regs = [0] * 11
    pc = 0
    n = len(code) // 8
    for _ in range(10 * n + 10):
        if not 0 <= pc < n:
            raise ValueError(f"pc {pc} out of the program")
        op, regs_byte, off, imm = struct.unpack_from("<BBhi", code, pc * 8)
        dst, src = regs_byte & 0xF, regs_byte >> 4
        pc += 1
        if op == LDX_MEM_W:
            if src != R1 or off not in (0, 4, 8):
                raise ValueError(f"load from r{src}+{off}")
            regs[dst] = struct.unpack_from("<I", ctx, off)[0]
        elif op == ALU_AND_K:
            regs[dst] = (regs[dst] & imm) & 0xFFFFFFFF
        elif op == ALU_RSH_K:
            regs[dst] = (regs[dst] & 0xFFFFFFFF) >> imm
        elif op == ALU_MOV_K:
            regs[dst] = imm & 0xFFFFFFFF
        elif op == ALU_MOV_X:
            regs[dst] = regs[src] & 0xFFFFFFFF
        elif op == JMP_JNE_K:
            if regs[dst] != imm & 0xFFFFFFFFFFFFFFFF:
                pc += off
        elif op == JMP_JNE_X:
            if regs[dst] != regs[src]:
                pc += off
        elif op == JMP_EXIT:
            return regs[R0]
        else:
            raise ValueError(f"unknown opcode {op:#x}")
    raise ValueError("the program does not terminate")
