"""``hitl-desktop agent`` as a real subprocess: bad links fail clearly; a good one connects
to a real host, and SIGTERM shuts it down cleanly (layout saved, exit code 0)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from tests.ui.conftest import running_host, until


def _env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["QT_QPA_PLATFORM"] = "offscreen"
    env["HITL_CONFIG_DIR"] = str(tmp_path / "agent-config")
    return env


async def test_bad_link_exits_2_with_a_reason(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hitl_desktop", "agent", "hitl://somewhere/agent",
        env=_env(tmp_path), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2
    assert b"cannot use this link" in err and b"port" in err


async def test_agent_connects_and_shuts_down_cleanly_on_sigterm(tmp_path: Path) -> None:
    async with running_host(tmp_path / "host") as host:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hitl_desktop", "-v", "agent", host.desk_link,
            env=_env(tmp_path), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        assert proc.stderr is not None
        log: list[str] = []

        async def read() -> None:
            assert proc.stderr is not None
            async for line in proc.stderr:
                log.append(line.decode(errors="replace"))

        reader = asyncio.get_running_loop().create_task(read())
        try:
            await until(lambda: any("connection connected" in ln for ln in log), 60,
                        what="the agent window connecting")
            steps = [s for s in ("creating the application", "building the workspace model",
                                 "building the window", "window up")
                     if any(f"agent: {s}" in ln for ln in log)]
            assert len(steps) == 4, log
            proc.send_signal(signal.SIGTERM)
            rc = await asyncio.wait_for(proc.wait(), 30)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            await asyncio.wait_for(reader, 10)
        assert rc == 0, "".join(log)
        assert any("agent: shutting down" in ln for ln in log)
        assert (tmp_path / "agent-config" / "agent-window.ini").is_file(), "layout saved"
