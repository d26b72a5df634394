"""Build steps that pyproject.toml cannot express: the cffi syscall module and the static pause and monitor binaries."""
import os
import subprocess

from setuptools import setup
from setuptools.command.build_ext import build_ext


class BuildExtAndPause(build_ext):
    """Compile csrc/pause.c, csrc/monitor.c (with csrc/supervise.c) and csrc/nsexec.c into pyrun/bin/ next to the extension modules."""

    def run(self):
        super().run()
        if self.inplace:
            out_dir = os.path.join("src", "pyrun", "bin")
        else:
            out_dir = os.path.join(self.build_lib, "pyrun", "bin")
        os.makedirs(out_dir, exist_ok=True)
        target = os.path.join(out_dir, "pause")
        cc = os.environ.get("CC", "cc")
        cmd = [cc, "-Os", "-static", "-s", "-Wall", "-Werror", "-o", target, os.path.join("csrc", "pause.c")]
        subprocess.run(cmd, check=True)
        # the small per-container monitor the Python monitor execs into (pyrun.runtime.monitor)
        target = os.path.join(out_dir, "monitor")
        cmd = [cc, "-Os", "-static", "-s", "-Wall", "-Wextra", "-Werror", "-o", target,
               os.path.join("csrc", "monitor.c"), os.path.join("csrc", "supervise.c"), os.path.join("csrc", "become.c")]
        subprocess.run(cmd, check=True)
        # `pyrun exec`'s helper: joins a running container and execs the command (pyrun.runtime.execprofile)
        target = os.path.join(out_dir, "nsexec")
        cmd = [cc, "-Os", "-static", "-s", "-Wall", "-Wextra", "-Werror", "-o", target,
               os.path.join("csrc", "nsexec.c"), os.path.join("csrc", "become.c")]
        subprocess.run(cmd, check=True)


setup(
    cffi_modules=["csrc/build_syscalls.py:ffibuilder"],
    cmdclass={"build_ext": BuildExtAndPause},
)
