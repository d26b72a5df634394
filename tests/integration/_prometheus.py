"""A real Prometheus server (Debian's `prometheus`) for the metrics tests, and `pyrun metrics serve`.

Prometheus runs on 127.0.0.1 and a free port with its own config and storage in a temp dir,
scraping the given targets every second; it is stopped and its files removed on the way out.
"""
from __future__ import annotations

import contextlib
import json
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

BINARY = "/usr/bin/prometheus"

CONFIG = """\
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: pyrun
    static_configs:
      - targets: [{targets}]
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Prometheus:
    def __init__(self, url: str):
        self.url = url

    def query(self, expr: str) -> list[dict]:
        """The result of an instant PromQL query through the HTTP API (/api/v1/query)."""
        q = urllib.parse.urlencode({"query": expr})
        with urllib.request.urlopen(f"{self.url}/api/v1/query?{q}", timeout=10) as r:
            body = json.load(r)
        assert body["status"] == "success", body
        return body["data"]["result"]

    def wait_for(self, expr: str, ok=bool, timeout: float = 120) -> list[dict]:
        """Query until ok(result) holds; fail with the last result after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(expr)
            if ok(result):
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"{expr}: still {result} after {timeout}s")
            time.sleep(0.5)

    def targets(self) -> list[dict]:
        with urllib.request.urlopen(f"{self.url}/api/v1/targets", timeout=10) as r:
            return json.load(r)["data"]["activeTargets"]


@contextlib.contextmanager
def prometheus(tmp: Path, targets: list[str]):
    """A Prometheus scraping `targets` (HOST:PORT) every second."""
    work = tmp / "prometheus"
    (work / "data").mkdir(parents=True)
    (work / "prometheus.yml").write_text(CONFIG.format(targets=", ".join(f"'{t}'" for t in targets)))
    port = free_port()
    log = open(work / "prometheus.log", "wb")
    proc = subprocess.Popen([BINARY, f"--config.file={work / 'prometheus.yml'}",
                             f"--storage.tsdb.path={work / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
                             "--log.level=warn"], stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180  # the test VM runs Prometheus under TCG, 15-30x slower
        while True:
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(url + "/-/ready", timeout=2) as r:
                    if r.status == 200:
                        break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"prometheus did not start:\n{(work / 'prometheus.log').read_text()}")
            time.sleep(0.2)
        yield Prometheus(url)
    finally:
        stop(proc)
        log.close()
        shutil.rmtree(work, ignore_errors=True)


@contextlib.contextmanager
def metrics_server(argv: list[str], log_path: Path):
    """`pyrun ... metrics serve --listen 127.0.0.1:0` (argv: the CLI up to and including `serve`'s
    options); yields the HOST:PORT it serves on, read from its log line."""
    log = open(log_path, "wb")
    proc = subprocess.Popen(argv, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while True:
            found = re.search(r"on http://([0-9.]+:[0-9]+)/metrics", log_path.read_text(errors="replace"))
            if found:
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"pyrun metrics serve did not start:\n{log_path.read_text()}")
            time.sleep(0.1)
        yield found.group(1)
    finally:
        stop(proc)
        log.close()
