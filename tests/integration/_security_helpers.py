"""A static multi-tool test binary (like crun's `init`) for the security tests.

`sectool <command> [arg]` prints "ok ..." and exits 0 when the call succeeded, or
"<call>: <strerror>" and exits 1 when the kernel refused it.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

SOURCE = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static int result(const char *call, long ret)
{
    if (ret < 0) {
        printf("%s: %s\n", call, strerror(errno));
        return 1;
    }
    printf("ok %s\n", call);
    return 0;
}

int main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : "";
    const char *arg = argc > 2 ? argv[2] : "";
    if (!strcmp(cmd, "keyctl"))  /* KEYCTL_GET_KEYRING_ID of the session keyring, create it */
        return result("keyctl", syscall(SYS_keyctl, 0, -3, 1));
    if (!strcmp(cmd, "unshare-user"))
        return result("unshare", unshare(CLONE_NEWUSER));
    if (!strcmp(cmd, "mount"))
        return result("mount", mount("none", *arg ? arg : "/tmp", "tmpfs", 0, ""));
    if (!strcmp(cmd, "raw-socket"))
        return result("socket", socket(AF_INET, SOCK_RAW, IPPROTO_ICMP));
    if (!strcmp(cmd, "bind-port")) {
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(atoi(arg))};
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0)
            return result("socket", fd);
        return result("bind", bind(fd, (struct sockaddr *)&sa, sizeof sa));
    }
    if (!strcmp(cmd, "ids")) {
        printf("uid=%d euid=%d\n", (int)getuid(), (int)geteuid());
        return 0;
    }
    if (!strcmp(cmd, "write")) {
        int fd = open(arg, O_WRONLY);
        if (fd < 0)
            return result("open", fd);
        return result("write", write(fd, "1\n", 2));
    }
    if (!strcmp(cmd, "deep-tree")) {  /* N nested directories "d" below the cwd (mkdir + relative chdir),
                                         then a symlink "escape" -> argv[3] at the bottom if given */
        for (long i = atol(arg); i > 0; i--)
            if (mkdir("d", 0755) < 0 || chdir("d") < 0)
                return result("mkdir/chdir", -1);
        if (argc > 3 && symlink(argv[3], "escape") < 0)
            return result("symlink", -1);
        return result("deep-tree", 0);
    }
    if (!strcmp(cmd, "deep-read")) {  /* cat the file argv[3] below N levels of "d" (relative chdir) */
        char buf[256];
        for (long i = atol(arg); i > 0; i--)
            if (chdir("d") < 0)
                return result("chdir", -1);
        int fd = open(argc > 3 ? argv[3] : "", O_RDONLY);
        if (fd < 0)
            return result("open", fd);
        long n = read(fd, buf, sizeof buf - 1);
        if (n < 0)
            return result("read", n);
        buf[n] = 0;
        printf("%s", buf);
        return 0;
    }
    fprintf(stderr, "usage: sectool keyctl|unshare-user|mount [dir]|raw-socket|bind-port N|ids|write FILE"
            "|deep-tree N [LINK]|deep-read N FILE\n");
    return 2;
}
"""


def build(directory: Path) -> Path:
    """Compile sectool statically into `directory`, plus a setuid-root copy `sectool-suid`."""
    if shutil.which("gcc") is None:
        import pytest
        pytest.skip("gcc is needed to build the security test helper")
    src = directory / "sectool.c"
    src.write_text(SOURCE)
    out = directory / "sectool"
    subprocess.run(["gcc", "-static", "-Os", "-o", str(out), str(src)], check=True, capture_output=True)
    suid = directory / "sectool-suid"
    shutil.copy(out, suid)
    suid.chmod(0o4755)
    directory.chmod(0o755)
    return out
