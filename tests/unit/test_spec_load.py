"""load_pod_file: YAML and JSON manifests, file errors with positions, import cost."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pyrun.errors import SpecError
from pyrun.spec import load_pod_file

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

YAML = """\
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  containers:
  - name: nginx
    image: nginx:1.25
    ports:
    - containerPort: 80
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def load_error(path: Path) -> SpecError:
    with pytest.raises(SpecError) as info:
        load_pod_file(path)
    assert info.value.source == str(path)
    return info.value


def test_yaml(tmp_path):
    loaded = load_pod_file(write(tmp_path, "pod.yaml", YAML))
    assert loaded.pod.name == "web" and loaded.pod.containers[0].ports[0].container_port == 80
    assert loaded.pod.raw["metadata"]["labels"] == {"app": "web"}


def test_json_with_any_extension_is_detected_by_content(tmp_path):
    import yaml
    text = json.dumps(yaml.safe_load(YAML), indent=2)
    for name in ("pod.json", "pod.yaml", "pod"):
        assert load_pod_file(write(tmp_path, name, text)).pod.name == "web"


def test_yaml_in_a_file_without_extension(tmp_path):
    assert load_pod_file(write(tmp_path, "manifest", YAML)).pod.name == "web"


def test_yaml_flow_mapping_that_is_not_json(tmp_path):
    text = "{apiVersion: v1, kind: Pod, metadata: {name: x}, spec: {containers: [{name: a, image: b}]}}"
    assert load_pod_file(write(tmp_path, "flow.yaml", text)).pod.name == "x"


def test_bad_json_position(tmp_path):
    err = load_error(write(tmp_path, "pod.json", '{\n  "apiVersion": "v1",\n  "kind": "Pod",,\n}'))
    assert "invalid JSON at line 3, column 17" in str(err)
    assert str(err).startswith(str(tmp_path / "pod.json"))


def test_bad_yaml_position(tmp_path):
    err = load_error(write(tmp_path, "pod.yaml", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: [oops\n"))
    assert "invalid YAML at line" in str(err)
    bad_indent = load_error(write(tmp_path, "pod2.yaml", "a: 1\n b: 2\n"))
    assert "line 2" in str(bad_indent)


def test_duplicate_keys_refused(tmp_path):
    err = load_error(write(tmp_path, "dup.yaml", YAML.replace("  name: web\n", "  name: web\n  name: other\n")))
    assert 'line 5, column 3: duplicate key "name"' in str(err)
    err = load_error(write(tmp_path, "dup.json", '{"kind": "Pod", "kind": "Pod"}'))
    assert 'duplicate key "kind"' in str(err)


def test_missing_file(tmp_path):
    err = load_error(tmp_path / "nope.yaml")
    assert "cannot read the manifest" in str(err) and "No such file" in str(err)


def test_directory(tmp_path):
    assert "cannot read the manifest" in str(load_error(tmp_path))


def test_not_utf8(tmp_path):
    path = tmp_path / "bin.yaml"
    path.write_bytes(b"\xff\xfe\x00garbage")
    assert "not UTF-8" in str(load_error(path))


@pytest.mark.parametrize("text", ["", "\n", "# only a comment\n", "---\n"])
def test_empty(tmp_path, text):
    assert "empty" in str(load_error(write(tmp_path, "empty.yaml", text)))


def test_multiple_documents(tmp_path):
    err = load_error(write(tmp_path, "two.yaml", YAML + "---\n" + YAML))
    assert "2 YAML documents" in str(err)


def test_single_document_with_separators(tmp_path):
    assert load_pod_file(write(tmp_path, "one.yaml", "---\n" + YAML + "...\n")).pod.name == "web"


def test_scalar_and_list_documents(tmp_path):
    assert "must be an object" in str(load_error(write(tmp_path, "s.yaml", "just a string\n")))
    assert "must be an object" in str(load_error(write(tmp_path, "l.yaml", "- a\n- b\n")))


def test_validation_errors_name_the_file(tmp_path):
    path = write(tmp_path, "bad.yaml", YAML.replace("containerPort: 80", "containerPort: 99999"))
    err = load_error(path)
    assert err.problems == [("spec.containers[0].ports[0].containerPort", "99999 is out of range (1-65535)")]
    assert str(err) == f"{path}: spec.containers[0].ports[0].containerPort: 99999 is out of range (1-65535)"


def test_yaml_timestamps_and_booleans(tmp_path):
    text = YAML.replace("  labels: {app: web}\n", "  labels: {app: web, enabled: yes}\n  creationTimestamp: 2024-01-01T00:00:00Z\n")
    err = load_error(write(tmp_path, "ts.yaml", text))
    assert err.problems[0][0] == "metadata.labels['enabled']"  # YAML 1.1: yes is a boolean, as kubectl sees it


def test_no_yaml_aliases_blowup(tmp_path):
    text = YAML + "  volumes: &v []\n"
    assert load_pod_file(write(tmp_path, "alias.yaml", text)).pod.volumes == ()


@pytest.mark.parametrize("name", ["pod-busybox.yaml", "pod-two-containers.yaml", "pod-resources.yaml"])
def test_examples_load_cleanly(name):
    loaded = load_pod_file(EXAMPLES / name)
    assert loaded.warnings == []
    assert all(c.image == "pyrun/demo:latest" for c in loaded.pod.containers)


def test_example_details():
    from pyrun.spec.qos import qos_class
    two = load_pod_file(EXAMPLES / "pod-two-containers.yaml").pod
    assert [v.kind for v in two.volumes] == ["emptyDir"]
    assert {c.volume_mounts[0].mount_path for c in two.containers} == {"/data"}
    res = load_pod_file(EXAMPLES / "pod-resources.yaml").pod
    assert qos_class(res) == "Burstable"
    assert res.containers[1].resources.requests == {"cpu": 100, "memory": 32 * 2**20}


def test_import_is_fast_and_light():
    """`import pyrun.spec` stays cheap: no yaml, jsonschema, difflib or ipaddress on the import path."""
    code = ("import sys, time; t = time.perf_counter(); import pyrun.spec, pyrun.spec.qos, pyrun.spec.process; "
            "d = time.perf_counter() - t; "
            "print(d, [m for m in ('yaml', 'jsonschema', 'difflib', 'pyroute2') if m in sys.modules])")
    best = min((subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                               env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}).stdout.split(" ", 1)
                for _ in range(3)), key=lambda r: float(r[0]))
    assert best[1].strip() == "[]"
    assert float(best[0]) < 0.1  # generous for a loaded CI machine; typically ≈ 20 ms


# --- bounded parsing: alias bombs, huge files, deep nesting (issue 15 item 4) ----------------------

def alias_bomb(levels: int = 9, width: int = 9) -> str:
    """The classic "billion laughs": each anchor is a list of `width` aliases of the one before."""
    lines = ["apiVersion: v1", "kind: Pod", "metadata:", "  name: bomb", "x-bomb:",
             "  l0: &l0 [" + ", ".join(['"lol"'] * width) + "]"]
    lines += [f"  l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]" for i in range(1, levels)]
    lines += ["spec:", "  containers:", "  - name: c", "    image: pyrun/demo:latest", f"    args: *l{levels - 1}"]
    return "\n".join(lines) + "\n"


def run_bounded(path: Path, seconds: float = 20.0) -> subprocess.CompletedProcess:
    """load_pod_file in a child with a hard timeout, so a regression fails instead of hanging pytest."""
    code = ("import sys\nfrom pyrun.errors import SpecError\nfrom pyrun.spec import load_pod_file\n"
            "try:\n    load_pod_file(sys.argv[1])\nexcept SpecError as e:\n    print(e)\n    sys.exit(2)\n")
    return subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=seconds)


def test_yaml_alias_bomb_is_refused(tmp_path):
    path = write(tmp_path, "bomb.yaml", alias_bomb())
    proc = run_bounded(path)
    assert proc.returncode == 2, proc.stderr
    assert str(path) in proc.stdout and "alias" in proc.stdout


def test_yaml_alias_bomb_error_names_the_line(tmp_path):
    err = load_error(write(tmp_path, "bomb.yaml", alias_bomb(levels=6)))
    assert "alias" in str(err) and "line " in str(err)


def test_yaml_merge_key_bomb_is_refused(tmp_path):
    lines = ["apiVersion: v1", "kind: Pod", "metadata: {name: m}", "x:", "  m0: &m0 {" +
             ", ".join(f"k{j}: v" for j in range(9)) + "}"]
    lines += [f"  m{i}: &m{i} {{" + ", ".join(f"k{j}: *m{i - 1}" for j in range(9)) + "}" for i in range(1, 9)]
    lines += ["spec: {containers: [{name: c, image: i, env: [{name: A, value: v}]}]}", "y: {<<: *m8}"]
    proc = run_bounded(write(tmp_path, "merge.yaml", "\n".join(lines) + "\n"))
    assert proc.returncode == 2 and "alias" in proc.stdout


def test_modest_aliases_still_work(tmp_path):
    text = ("apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec:\n  containers:\n"
            "  - name: a\n    image: i\n    env: &env [{name: A, value: '1'}, {name: B, value: '2'}]\n"
            "  - name: b\n    image: i\n    env: *env\n")
    pod = load_pod_file(write(tmp_path, "ok.yaml", text)).pod
    assert [e.name for e in pod.containers[1].env] == ["A", "B"]


@pytest.mark.parametrize("name", ["big.yaml", "big.json"])
def test_huge_manifest_is_refused_by_size(tmp_path, name):
    from pyrun.spec.load import MAX_MANIFEST_BYTES
    path = tmp_path / name
    with open(path, "w") as f:
        f.write("# " if name.endswith(".yaml") else " ")
        f.write("x" * (MAX_MANIFEST_BYTES + 1))
    err = load_error(path)
    assert str(path) in str(err) and "MiB" in str(err) and "larger than" in str(err)


@pytest.mark.parametrize("name,open_,close", [("deep.json", "[", "]"), ("deep.yaml", "[", "]"),
                                              ("deepmap.json", '{"a":', "}")])
@pytest.mark.parametrize("depth", [200, 5000, 100_000])
def test_deep_nesting_is_a_clear_error(tmp_path, name, open_, close, depth):
    body = open_ * depth + "1" + close * depth
    text = body if name.endswith(".json") else "apiVersion: v1\nkind: Pod\nx: " + body + "\n"
    err = load_error(write(tmp_path, name, text))
    assert "nested" in str(err) and "levels" in str(err)


def test_deep_block_yaml_is_a_clear_error(tmp_path):
    text = "".join(" " * i + f"k{i}:\n" for i in range(1000)) + " " * 1000 + "v: 1\n"
    err = load_error(write(tmp_path, "deep.yaml", text))
    assert "nested" in str(err)


def test_realistic_nesting_is_fine(tmp_path):
    text = YAML + "  affinity: {nodeAffinity: {x: {y: [{z: [{w: {v: [1]}}]}]}}}\n"
    load_pod_file(write(tmp_path, "ok.yaml", text))  # may warn about affinity, must not fail on depth
