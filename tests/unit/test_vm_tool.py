"""Unit tests for tests/vm/vmtool.py, the host-side helper of the cgroup v2 test VM."""
from __future__ import annotations

import gzip
import importlib.util
import lzma
from pathlib import Path

import pytest

VMTOOL = Path(__file__).resolve().parents[1] / "vm" / "vmtool.py"


@pytest.fixture(scope="module")
def vmtool():
    spec = importlib.util.spec_from_file_location("vmtool", VMTOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


DEB822 = """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
"""


def test_mirror_from_deb822(vmtool):
    assert vmtool.debian_mirror([DEB822]) == "http://mirror.example/debian"


def test_mirror_skips_security_and_third_party_sources(vmtool):
    texts = [
        "deb https://packages.cloud.google.com/apt cloud-sdk-bookworm main\n",
        "deb http://security.debian.org/debian-security bookworm-security main\n",
        "deb [arch=amd64] http://ftp.example.org/debian/ bookworm main\n",
    ]
    assert vmtool.debian_mirror(texts) == "http://ftp.example.org/debian"


def test_mirror_missing_is_an_error(vmtool):
    with pytest.raises(SystemExit, match="no Debian mirror"):
        vmtool.debian_mirror(["deb https://deb.nodesource.com/node_20.x nodistro main\n"])


ELF = b"\x7fELF" + b"\x02\x01\x01" + bytes(200)


@pytest.mark.parametrize("compress", [gzip.compress, lambda d: lzma.compress(d, format=lzma.FORMAT_XZ)])
def test_extract_vmlinux_finds_the_payload_after_the_setup_code(vmtool, compress):
    bzimage = b"MZ" + bytes(500) + b"\x1f\x8b\x08 not a stream" + compress(ELF) + b"trailing data"
    assert vmtool.extract_vmlinux(bzimage) == ELF


def test_extract_vmlinux_without_payload_is_an_error(vmtool):
    with pytest.raises(SystemExit, match="no compressed ELF"):
        vmtool.extract_vmlinux(b"MZ" + bytes(100) + gzip.compress(b"not an elf"))


MODULES_DEP = """\
kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko
kernel/lib/crc16.ko:
kernel/fs/mbcache.ko:
kernel/fs/jbd2/jbd2.ko:
kernel/fs/9p/9p.ko: kernel/net/9p/9pnet.ko kernel/fs/netfs/netfs.ko
kernel/net/9p/9pnet.ko:
kernel/net/9p/9pnet_virtio.ko: kernel/net/9p/9pnet.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_ring.ko:
kernel/fs/netfs/netfs.ko:
kernel/crypto/crc32c_generic.ko:
"""


def test_load_order_puts_dependencies_first_and_once(vmtool):
    deps = vmtool.parse_modules_dep(MODULES_DEP)
    order = vmtool.load_order(deps, ["ext4", "9pnet_virtio", "9p"])
    assert order.index("kernel/fs/jbd2/jbd2.ko") < order.index("kernel/fs/ext4/ext4.ko")
    assert order.index("kernel/net/9p/9pnet.ko") < order.index("kernel/net/9p/9pnet_virtio.ko")
    assert order.count("kernel/net/9p/9pnet.ko") == 1
    assert order[-1] == "kernel/fs/9p/9p.ko"


def test_load_order_accepts_dashes_and_skips_builtins(vmtool):
    deps = vmtool.parse_modules_dep(MODULES_DEP)
    assert vmtool.load_order(deps, ["crc32c-generic", "virtio_pci"], {"virtio_pci"}) == [
        "kernel/crypto/crc32c_generic.ko"
    ]


def test_load_order_unknown_module_is_an_error(vmtool):
    with pytest.raises(SystemExit, match="'nosuch'"):
        vmtool.load_order(vmtool.parse_modules_dep(MODULES_DEP), ["nosuch"])


PYPROJECT = """\
[project]
name = "x"
dependencies = ["click>=8.1", "pyyaml"]
[project.optional-dependencies]
test = ["pytest>=7"]
cri = ["grpcio"]
"""


def test_requirements_are_dependencies_plus_named_extras(vmtool):
    assert vmtool.requirements(PYPROJECT, ["test"]) == ["click>=8.1", "pyyaml", "pytest>=7"]


def test_requirements_unknown_extra_is_an_error(vmtool):
    with pytest.raises(SystemExit, match="'docs'"):
        vmtool.requirements(PYPROJECT, ["docs"])
