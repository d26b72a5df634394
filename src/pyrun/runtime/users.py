"""Resolve an image/config user ("uid", "uid:gid", "name", "name:group") against the
container's own /etc/passwd and /etc/group (pure parsing; the init reads the files)."""
from __future__ import annotations


from pyrun.errors import PyrunError
from pyrun.frozen import Frozen


class User(Frozen):
    uid: int
    gid: int
    groups: tuple[int, ...]
    home: str


def parse_passwd(text: str) -> list[tuple[str, int, int, str]]:
    out = []
    for line in text.splitlines():
        parts = line.split(":")
        if len(parts) >= 7 and parts[2].isdigit() and parts[3].isdigit():
            out.append((parts[0], int(parts[2]), int(parts[3]), parts[5]))
    return out


def parse_group(text: str) -> list[tuple[str, int, list[str]]]:
    out = []
    for line in text.splitlines():
        parts = line.split(":")
        if len(parts) >= 4 and parts[2].isdigit():
            out.append((parts[0], int(parts[2]), [m for m in parts[3].split(",") if m]))
    return out


def resolve_in_root(spec: str, root: str = "/") -> User:
    """Resolve `spec` against <root>/etc/passwd and <root>/etc/group (missing files count as empty)."""
    return resolve_user(spec, _read(f"{root.rstrip('/')}/etc/passwd"), _read(f"{root.rstrip('/')}/etc/group"))


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def resolve_user(spec: str, passwd: str, group: str) -> User:
    """Resolve `spec` the way runc does: numbers need no passwd entry, names must exist."""
    spec = spec or "0"
    user_part, _, group_part = spec.partition(":")
    users = parse_passwd(passwd)
    groups = parse_group(group)
    name = None
    home = "/"
    if user_part.isdigit():
        uid = int(user_part)
        entry = next((u for u in users if u[1] == uid), None)
        gid = entry[2] if entry else 0
        if entry:
            name, home = entry[0], entry[3]
    else:
        entry = next((u for u in users if u[0] == user_part), None)
        if entry is None:
            raise PyrunError(f"user {user_part!r} is not in the container's /etc/passwd")
        name, uid, gid, home = entry
    if group_part:
        if group_part.isdigit():
            gid = int(group_part)
        else:
            g = next((g for g in groups if g[0] == group_part), None)
            if g is None:
                raise PyrunError(f"group {group_part!r} is not in the container's /etc/group")
            gid = g[1]
    extra = tuple(sorted({g[1] for g in groups if name and name in g[2] and g[1] != gid}))
    return User(uid, gid, extra, home or "/")
