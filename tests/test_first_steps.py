"""The README's "First steps", run as written: every command of its ``sh`` blocks, line by
line (a here-document is one command), in a fresh temporary directory, each in its own
``bash -c`` with a bounded time, each expected to exit as its comment says (``# exit N``,
else 0). ``parity`` on PATH runs this checkout; the server the steps start in the
background is stopped at the end whatever happens.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 600  # seconds a command may take (a cold numba cache compiles for minutes)


def first_steps(readme: str) -> list[tuple[str, int]]:
    """(command, expected exit code) for each command of the section's ``sh`` blocks."""
    section = readme.split("\n## First steps\n", 1)[1].split("\n## ", 1)[0]
    commands: list[tuple[str, int]] = []
    for block in re.findall(r"^```sh\n(.*?)^```$", section, re.S | re.M):
        lines = iter(block.splitlines())
        for line in lines:
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            heredoc = re.search(r"<<\s*'?(\w+)'?", line)
            command = line
            if heredoc:  # the body up to the terminator belongs to this command
                for body in lines:
                    command += "\n" + body
                    if body == heredoc.group(1):
                        break
            expect = re.search(r"#\s*exit (\d+)\b", line)
            commands.append((command, int(expect.group(1)) if expect else 0))
    return commands


def test_section_is_found_and_annotated():
    commands = first_steps((ROOT / "README.md").read_text())
    assert len(commands) >= 15
    assert any("<<'EOF'" in c and c.endswith("\nEOF") for c, _ in commands)
    assert [c.split()[0] for c, code in commands if code] == ["parity", "(cd", "parity",
                                                              "parity"]


def _stop(pid_file: Path) -> None:
    """Stop the server the steps started (only if that pid is still a parity serve)."""
    try:
        pid = int(pid_file.read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return
    if b"parity" in cmdline and b"serve" in cmdline:
        os.kill(pid, signal.SIGTERM)


@pytest.mark.slow
def test_first_steps_work_as_written(tmp_path):
    if shutil.which("curl") is None:  # never a skip: the README's steps use it
        pytest.fail("curl is not installed: the README's metrics steps use it")
    shims = tmp_path / "bin"
    shims.mkdir()
    (shims / "parity").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m parity "$@"\n')
    (shims / "parity").chmod(0o755)
    work = tmp_path / "parity-try"
    work.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("CODEC_MODE", "PARITY_STATE", "PARITY_MODE_FILE")}
    env.update(PATH=f"{shims}:{Path(sys.executable).parent}:{env.get('PATH', '')}",
               PYTHONPATH=str(ROOT))
    try:
        for command, expect in first_steps((ROOT / "README.md").read_text()):
            run = subprocess.run(["bash", "-c", command], cwd=work, env=env, text=True,
                                 capture_output=True, timeout=TIMEOUT)
            assert run.returncode == expect, (
                f"{command}\nexit {run.returncode}, expected {expect}\n"
                f"stdout: {run.stdout[-3000:]}\nstderr: {run.stderr[-3000:]}")
            _check(command, run)
    finally:
        _stop(work / "serve.pid")


def _check(command: str, run: subprocess.CompletedProcess) -> None:
    """What a few steps must show besides their exit code."""
    if command.startswith("cat table.txt"):
        assert "header_hash" in run.stdout and "replay: parity replay /" in run.stdout
    elif command.startswith("(cd / && sh"):
        assert '"function": "header_hash"' in run.stdout
    elif command.startswith("parity mode set 2") and run.returncode == 2:
        assert "fewer than 10,000" in run.stderr and "parity serve --workload" in run.stderr
    elif command.startswith("parity mode show") and "no state yet" in command:
        assert "no mode state at state.db yet" in run.stderr
    elif "/metrics" in command:
        assert "codec_mode_active 3.0" in run.stdout
    elif "/alertmanager" in command:
        assert '"demoted": true' in run.stdout
    elif command.startswith("parity mode show") and "rollback" in command:
        assert '"name": "shadow"' in run.stdout and "refactored_only" in run.stdout
