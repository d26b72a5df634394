"""The Vagrantfile provisions with exactly the README's set-up command, and vagrant accepts it."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VAGRANTFILE = REPO / "Vagrantfile"
README = REPO / "README.md"

FENCE = re.compile(r"^\s*(```|~~~)")
SETUP_CONSTANT = re.compile(r'^SETUP_COMMAND\s*=\s*"([^"]+)"\s*$', re.MULTILINE)


def fenced_lines(markdown: str) -> list[str]:
    """Lines inside fenced code blocks, stripped, without a leading "$ " prompt."""
    lines, inside = [], False
    for line in markdown.splitlines():
        if FENCE.match(line):
            inside = not inside
        elif inside:
            lines.append(line.strip().removeprefix("$ ").strip())
    return lines


def readme_setup_commands(markdown: str) -> list[str]:
    return [line for line in fenced_lines(markdown) if "./setup.sh" in line]


def vagrant_setup_command(vagrantfile: str) -> str:
    match = SETUP_CONSTANT.search(vagrantfile)
    assert match, "Vagrantfile defines no SETUP_COMMAND = \"...\""
    return match.group(1)


def test_fenced_lines_strip_prompts_and_ignore_prose():
    markdown = "Run ./setup.sh like this:\n\n```sh\n$ ./setup.sh\n```\n\nthen\n\n```\n./test.sh\n```\n"
    assert readme_setup_commands(markdown) == ["./setup.sh"]


def test_vagrantfile_provisions_with_its_setup_command():
    text = VAGRANTFILE.read_text()
    assert vagrant_setup_command(text)
    # The provisioner runs SETUP_COMMAND, as root, in the synced checkout.
    assert re.search(r'config\.vm\.provision\s+"shell".*privileged:\s*true.*'
                     r'inline:\s*"cd /vagrant && #\{SETUP_COMMAND\}"', text)
    assert re.search(r'synced_folder\s+"\.",\s*"/vagrant"', text)
    assert 'config.vm.box = "debian/bookworm64"' in text
    for provider in ("libvirt", "virtualbox"):
        assert f'config.vm.provider "{provider}"' in text


def test_provision_command_is_the_readme_setup_command():
    if not README.exists():
        pytest.skip("README.md does not exist yet")
    commands = readme_setup_commands(README.read_text())
    assert commands, "README.md has no fenced line running ./setup.sh"
    assert vagrant_setup_command(VAGRANTFILE.read_text()) in commands, (
        f"the Vagrantfile's SETUP_COMMAND is not the README's set-up command {commands}"
    )


@pytest.mark.skipif(shutil.which("vagrant") is None, reason="vagrant is not installed")
def test_vagrant_validate(tmp_path):
    env = dict(
        os.environ,
        VAGRANT_CWD=str(REPO),
        VAGRANT_HOME=str(tmp_path / "home"),  # keep ~/.vagrant.d and ./.vagrant untouched
        VAGRANT_DOTFILE_PATH=str(tmp_path / "dot"),
        VAGRANT_CHECKPOINT_DISABLE="1",  # no version check over the network
    )
    # --ignore-provider: neither libvirt nor VirtualBox is installed where the tests run.
    result = subprocess.run(
        ["vagrant", "validate", "--ignore-provider"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "validated successfully" in result.stdout
