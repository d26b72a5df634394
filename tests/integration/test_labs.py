"""Every lab in docs/labs/ is executed: each ```console command runs and its output is compared.

One test per lab. A lab runs as root in one bash session inside a throwaway network +
mount namespace, with `pyrun` from this checkout first on PATH, its own state root
(PYRUN_ROOT) and cgroup parent (PYRUN_CGROUP_PARENT). After the lab's teardown the
test fails if a pod, a mount of the state root, a process of the lab, or the lab's
cgroup parent is left, or if vm.nr_hugepages changed.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
from pathlib import Path

import pytest

from _labs_runner import (
    LabFormatError, NodeNamespace, output_lines, output_matches, parse_console_block, parse_lab, run_lab,
)
from _procs import processes_mentioning

REPO = Path(__file__).resolve().parents[2]
LABS_DIR = REPO / "docs" / "labs"
LABS = sorted(p for p in LABS_DIR.glob("[0-9]*.md"))
CGROUP_ROOT = Path("/sys/fs/cgroup")

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="labs run as root")


# --- the format and the matcher -------------------------------------------------------------

def test_matcher_literal_any_text_and_any_lines():
    assert output_matches(["a", "b"], ["a", "b"])
    assert not output_matches(["a"], ["a", "b"])
    assert output_matches(["pod [..] running"], ["pod c62ea13 running"])
    assert not output_matches(["pod [..] running"], ["pod c62ea13 stopped"])
    assert output_matches(["x", "...", "z"], ["x", "z"])
    assert output_matches(["x", "...", "z"], ["x", "1", "2", "z"])
    assert output_matches(["..."], [])
    assert not output_matches(["x", "...", "z"], ["x", "1"])
    assert output_matches(["a.b*c(d)"], ["a.b*c(d)   "])  # regex characters are literal, trailing blanks ignored
    assert output_lines("a\nb\n") == ["a", "b"] and output_lines("") == []


def test_console_block_commands_continuations_heredocs_and_exit():
    block = [
        "# echo one \\",
        "two",
        "one two",
        "# cat > f <<'EOF'",
        "# not a command",
        "EOF",
        "# for i in 1 2; do",
        "> cat <<EOF",
        "$i",
        "EOF",
        "> done",
        "1",
        "2",
        "# false",
        "[exit: 1]",
        "",
    ]
    cmds = parse_console_block(block, 10)
    assert [c.text for c in cmds] == ["echo one \\\ntwo", "cat > f <<'EOF'\n# not a command\nEOF",
                                      "for i in 1 2; do\ncat <<EOF\n$i\nEOF\ndone", "false"]
    assert cmds[0].expected == ["one two"] and cmds[0].line == 10
    assert cmds[1].expected == [] and cmds[2].expected == ["1", "2"]
    assert cmds[3].exit_code == 1 and cmds[3].expected == []


def test_hidden_setup_teardown_and_shown_blocks():
    lab = parse_lab("<!-- setup:\nA=1\n-->\n```sh\nnot run\n```\n```console\n# echo hi\nhi\n```\n"
                    "<!-- teardown:\nrm -f x\n-->\n")
    assert lab.setup == "A=1\n" and lab.teardown == "rm -f x\n" and lab.shown_blocks == 1
    assert [c.text for c in lab.commands] == ["echo hi"]
    with pytest.raises(LabFormatError):
        parse_console_block(["output first"], 1)


@pytest.mark.parametrize("lab_path", LABS, ids=[p.stem for p in LABS])
def test_lab_is_well_formed(lab_path: Path):
    lab = parse_lab(lab_path.read_text(), lab_path)
    text = lab_path.read_text()
    assert lab.teardown, f"{lab_path.name}: every lab needs a <!-- teardown: --> block"
    for heading in ("## Goals", "What just happened in the kernel"):
        assert heading in text, f"{lab_path.name}: missing section {heading!r}"


def test_the_labs_are_numbered_without_gaps():
    assert len(LABS) >= 9
    assert [p.name[:2] for p in LABS] == [f"{i:02d}" for i in range(1, len(LABS) + 1)]


# --- running the labs -----------------------------------------------------------------------

def _nr_hugepages() -> str:
    return Path("/proc/sys/vm/nr_hugepages").read_text().strip()


def _cgroup_dirs(parent: str) -> list[Path]:
    return [d for d in CGROUP_ROOT.glob(f"*/{parent}") if d.is_dir()]


def _remove_cgroup_tree(top: Path) -> None:
    for dirpath, _, _ in sorted(os.walk(top), key=lambda t: -t[0].count("/")):
        try:
            os.rmdir(dirpath)
        except OSError:
            pass


@pytest.fixture
def lab_env(tmp_path_factory):
    base = Path(f"/tmp/pyrun-lab-{secrets.token_hex(3)}")
    (base / "work").mkdir(parents=True)
    parent = f"pyrun-lab-{secrets.token_hex(3)}"
    env = {
        "PATH": f"{REPO / '.venv' / 'bin'}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": "/root", "LC_ALL": "C.UTF-8", "TERM": "dumb",
        "PYRUN_ROOT": str(base / "root"), "PYRUN_CGROUP_PARENT": parent, "PYRUN_SRC": str(REPO),
    }
    yield env, base
    shutil.rmtree(base, ignore_errors=True)


KUBE_STAGE = "<!-- kube-stage -->"  # a lab that needs the Kubernetes binaries (tests/kube/build.sh)
KUBE_LAB_TIMEOUT = 300  # per command: the control plane starts slowly on a loaded machine


@root_only
@pytest.mark.integration
@pytest.mark.parametrize("lab_path", LABS, ids=[p.stem for p in LABS])
def test_lab(lab_path: Path, lab_env):
    env, base = lab_env
    text = lab_path.read_text()
    timeout = 60
    if KUBE_STAGE in text:
        if not os.environ.get("PYRUN_KUBE_BIN"):
            pytest.skip("runs in ./test.sh's kube stage (PYRUN_KUBE_BIN: the tests/kube/build.sh binaries)")
        env["PYRUN_KUBE_BIN"] = os.environ["PYRUN_KUBE_BIN"]
        timeout = KUBE_LAB_TIMEOUT
    lab = parse_lab(text, lab_path)
    hugepages_before = _nr_hugepages()
    node = NodeNamespace()
    problems: list[str] = []
    try:
        failure, teardown_out = run_lab(lab, node, env, base / "work", timeout)
        # What the teardown should have removed, checked inside the lab's namespaces.
        pods = node.run("pyrun pod ls -o json", env, base)
        left = json.loads(pods.stdout) if pods.returncode == 0 and pods.stdout.strip() else []
        if left:
            problems.append(f"pods left after the teardown: {[p['name'] for p in left]}")
            node.run("pyrun pod ls -o json | python3 -c 'import json,sys; "
                     "[print(p[\"id\"]) for p in json.load(sys.stdin)]' | xargs -r pyrun pod rm -f", env, base)
        mounts = node.run(f"grep -F ' {base}' /proc/self/mountinfo || true", env, base).stdout
        if mounts.strip():
            problems.append(f"mounts under {base} left after the teardown:\n{mounts}")
    finally:
        node.close()
    if _nr_hugepages() != hugepages_before:
        problems.append(f"vm.nr_hugepages is {_nr_hugepages()}, was {hugepages_before}")
        Path("/proc/sys/vm/nr_hugepages").write_text(hugepages_before)
    procs = processes_mentioning(str(base))
    if procs:
        problems.append("processes left: " + "; ".join(procs))
    cgroups = _cgroup_dirs(env["PYRUN_CGROUP_PARENT"])
    if cgroups:
        problems.append(f"cgroups left: {cgroups}")
        for d in cgroups:
            _remove_cgroup_tree(d)
    message = ""
    if failure:
        message += str(failure) + (f"--- teardown output:\n{teardown_out}" if teardown_out.strip() else "")
    if problems:
        message += "\n".join(problems)
    assert not message, message
