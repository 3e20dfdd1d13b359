"""The README's commands work as written: the make targets it names exist and resolve,
and its Jupyter command starts a server that opens the lesson it names."""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from repo import ROOT

README = (ROOT / "README.md").read_text()
BASH_BLOCKS = re.findall(r"```bash\n(.*?)```", README, re.S)
COMMANDS = [line.split("#")[0].strip() for block in BASH_BLOCKS for line in block.splitlines()
            if line.split("#")[0].strip()]


def test_readme_names_the_two_commands():
    assert "make book" in COMMANDS and "make test" in COMMANDS


@pytest.mark.parametrize("command", [c for c in COMMANDS if c.startswith("make ")])
def test_make_targets_in_the_readme_resolve(command):
    """``make -n`` expands the target's recipe without running it: it fails when the
    target or a prerequisite is missing."""
    result = subprocess.run(["make", "-n", *shlex.split(command)[1:]], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


def test_the_jupyter_command_starts_a_server_with_the_lesson():
    jupyter = [c for c in COMMANDS if "jupyter lab" in c]
    assert jupyter, "the README shows how to open a notebook in Jupyter"
    argv = shlex.split(jupyter[0])
    notebook = ROOT / argv[-1]
    assert notebook.exists(), f"the README opens {argv[-1]}, which does not exist"
    exe = ROOT / argv[0]
    if not exe.exists():
        pytest.fail(f"{argv[0]} is missing: the venv that `make venv` builds must include JupyterLab")
    extra = ["--no-browser", "--ServerApp.port=0", "--ServerApp.token=readme-test",
             "--ServerApp.open_browser=False"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # CI runs as root; a learner does not
        extra.append("--allow-root")
    proc = subprocess.Popen([str(exe), *argv[1:-1], *extra, str(notebook)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = None
        deadline = time.time() + 90
        lines = []
        while time.time() < deadline and url is None:
            line = proc.stdout.readline()
            if not line:
                if proc.poll() is not None:
                    break
                continue
            lines.append(line)
            m = re.search(r"(http://127\.0\.0\.1:\d+)/", line)
            url = m.group(1) if m else None
        assert url, "the server did not start:\n" + "".join(lines[-20:])
        local = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no proxy for localhost
        for attempt in range(30):  # the log line can come a moment before the socket accepts
            try:
                with local.open(f"{url}/api/status?token=readme-test", timeout=20) as r:
                    assert r.status == 200
                break
            except urllib.error.URLError:
                if attempt == 29:
                    raise
                time.sleep(1)
        # Given a file, Jupyter serves the file's folder and opens the file in it.
        with local.open(f"{url}/api/contents/{notebook.name}?token=readme-test&content=0", timeout=20) as r:
            assert json.load(r)["type"] == "notebook"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
