"""Run one CNI plugin binary: config JSON on stdin, CNI_* in the environment, a timeout.

The only place the CNI code starts a process. The plugin is started in its own
session so a timeout kills it and whatever it started (iptables, ...), by its pid.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
from typing import Mapping

from pyrun import explain
from pyrun.errors import NetworkError
from pyrun.netns.cni import protocol

DEFAULT_TIMEOUT = 60.0


def run_plugin(path: str, plugin_type: str, command: str, conf: Mapping, env: Mapping[str, str],
               timeout: float = DEFAULT_TIMEOUT) -> dict | None:
    """Execute the plugin; its parsed reply (see protocol.parse_reply)."""
    stdin = json.dumps(conf).encode()
    if explain.active():
        cni_env = [f"{k}={env[k]}" for k in ("CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS",
                                             "CNI_PATH") if k in env]
        explain.emit(explain.argv(*cni_env, path) + " <<< " + explain.argv(stdin.decode()))
    try:
        proc = subprocess.Popen([path], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=dict(env), cwd="/", start_new_session=True)
    except OSError as e:
        raise NetworkError(f"CNI plugin {plugin_type} ({path}) could not be started: {e.strerror}") from None
    try:
        out, err = proc.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise NetworkError(f"CNI plugin {plugin_type} did not finish {command} within {timeout:g} s") from None
    except BaseException:
        _kill_group(proc)
        raise
    return protocol.parse_reply(plugin_type, command, proc.returncode, out, err)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.communicate()
