#!/usr/bin/python3
"""Host-side helpers for the pure cgroup v2 test VM (stdlib only, run by build-image.sh).

Sub-commands:
  mirror SOURCES...              print the first Debian mirror URL apt already uses
  extract-vmlinux BZIMAGE OUT    write the uncompressed ELF kernel found inside a bzImage
  modules MODULES_DIR NAME...    print the .ko paths (relative to MODULES_DIR) to insmod, dependencies first
  requirements PYPROJECT EXTRA...  print the project's dependencies plus the named extras, one per line
"""
from __future__ import annotations

import bz2
import lzma
import re
import sys
import tomllib
import zlib
from pathlib import Path

DEB822_URIS = re.compile(r"^URIs:\s*(\S+)", re.MULTILINE)
ONE_LINE_DEB = re.compile(r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)", re.MULTILINE)


def debian_mirror(sources_texts: list[str]) -> str:
    """Return the first apt source URI serving the Debian archive itself (not -security, not third parties).

    Accepts both the one-line format (sources.list) and deb822 (*.sources, see sources.list(5)).
    """
    candidates: list[str] = []
    for text in sources_texts:
        candidates += DEB822_URIS.findall(text)
        candidates += [uri for uri, _suite in ONE_LINE_DEB.findall(text)]
    for uri in candidates:
        path = uri.rstrip("/")
        if path.endswith("/debian") and "security" not in path:
            return path
    raise SystemExit("vmtool: no Debian mirror (a URI ending in /debian) found in the apt sources")


# Compressed payload magics, in the order scripts/extract-vmlinux tries them.
_MAGICS = [
    (b"\x1f\x8b\x08", "gzip"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"BZh", "bzip2"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
]


def _decompress(data: bytes, kind: str) -> bytes:
    if kind == "gzip":
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(data)
    if kind == "xz":
        return lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(data)
    if kind == "bzip2":
        return bz2.BZ2Decompressor().decompress(data)
    raise ValueError(f"no stdlib decompressor for {kind}")


def extract_vmlinux(bzimage: bytes) -> bytes:
    """Find the compressed kernel inside a bzImage and return the ELF image (like scripts/extract-vmlinux)."""
    for magic, kind in _MAGICS:
        start = bzimage.find(magic)
        while start != -1:
            try:
                out = _decompress(bzimage[start:], kind)
            except (OSError, EOFError, lzma.LZMAError, zlib.error, ValueError):
                out = b""
            if out.startswith(b"\x7fELF"):
                return out
            start = bzimage.find(magic, start + 1)
    raise SystemExit("vmtool: no compressed ELF kernel found in the bzImage")


def parse_modules_dep(text: str) -> dict[str, list[str]]:
    """Parse depmod's modules.dep ("path: dep dep ...", see depmod(8)) into {module path: [dependency paths]}."""
    deps: dict[str, list[str]] = {}
    for line in text.splitlines():
        if ":" not in line:
            continue
        path, rest = line.split(":", 1)
        deps[path.strip()] = rest.split()
    return deps


def module_name(path: str) -> str:
    """kernel/fs/ext4/ext4.ko[.xz] -> ext4 (dashes and underscores are the same to the kernel)."""
    base = path.rsplit("/", 1)[-1].split(".ko", 1)[0]
    return base.replace("-", "_")


def load_order(deps: dict[str, list[str]], names: list[str], builtin: set[str] = frozenset()) -> list[str]:
    """Return module paths to insmod so that every module comes after the modules it needs.

    Names that are built into the kernel (modules.builtin) are skipped; unknown names are an error.
    """
    by_name = {module_name(p): p for p in deps}
    order: list[str] = []
    seen: set[str] = set()

    def visit(path: str) -> None:
        if path in seen:
            return
        seen.add(path)
        for dep in deps.get(path, []):
            visit(dep)
        order.append(path)

    for name in names:
        key = name.replace("-", "_")
        if key in builtin:
            continue
        if key not in by_name:
            raise SystemExit(f"vmtool: kernel module {name!r} is neither in modules.dep nor built in")
        visit(by_name[key])
    return order


def requirements(pyproject: str, extras: list[str]) -> list[str]:
    """The [project] dependencies plus the named optional-dependency groups of a pyproject.toml."""
    project = tomllib.loads(pyproject)["project"]
    reqs = list(project.get("dependencies", []))
    optional = project.get("optional-dependencies", {})
    for extra in extras:
        if extra not in optional:
            raise SystemExit(f"vmtool: pyproject.toml has no optional-dependencies group {extra!r}")
        reqs += optional[extra]
    return reqs


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    cmd, args = argv[0], argv[1:]
    if cmd == "mirror":
        texts = [Path(p).read_text() for p in args if Path(p).is_file()]
        print(debian_mirror(texts))
    elif cmd == "extract-vmlinux":
        Path(args[1]).write_bytes(extract_vmlinux(Path(args[0]).read_bytes()))
    elif cmd == "modules":
        moddir = Path(args[0])
        deps = parse_modules_dep((moddir / "modules.dep").read_text())
        builtin_file = moddir / "modules.builtin"
        builtin = {module_name(p) for p in builtin_file.read_text().split()} if builtin_file.exists() else set()
        print("\n".join(load_order(deps, args[1:], builtin)))
    elif cmd == "requirements":
        print("\n".join(requirements(Path(args[0]).read_text(), args[1:])))
    else:
        print(f"vmtool: unknown command {cmd!r}\n{__doc__}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
