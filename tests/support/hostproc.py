"""A host in its own process, for attack tests and bench/attacks.py.

Why a process: the hostile clients and the measured pair run on the test's own
event loop; the host must not share that loop (or its open-file limit, or its
memory figure). Usage::

    python -m tests.support.hostproc DATA_DIR '{"relay": {...}, "nofile": 1024,
        "sessions": 3, "history": {"session": 1, "lines": 500, "chars": 4000}}'

prints one JSON line (``url``, ``pid``, the sessions' tokens) once it listens, logs
at INFO to stderr, and stops cleanly on SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any


def _limit_files(nofile: int) -> None:
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, hard))


async def _serve(data_dir: Path, spec: dict[str, Any]) -> None:
    from hitl_desktop.app.services import copilot_factory, start_host
    from hitl_desktop.config import Settings, resolve_paths
    from hitl_desktop.host.relay import RelayConfig

    paths = resolve_paths(data_dir, data_dir / "config")
    settings = Settings()
    factory = (copilot_factory(paths, settings, provider=spec["copilot"])
               if spec.get("copilot") else None)
    host = await start_host(paths, settings, port=0, config=RelayConfig(**spec.get("relay", {})),
                            copilot_factory=factory)
    sessions = []
    for i in range(int(spec.get("sessions", 2))):
        created = host.create_session(customer_id="CUST1001", title=f"attack test {i}")
        sessions.append({"session_id": created.session_id,
                         "customer_token": created.customer_token,
                         "agent_token": created.agent_token})
    history = spec.get("history")
    if history:  # a long conversation, as after weeks of chatting
        st = host.relay.sessions[sessions[int(history["session"])]["session_id"]]
        text = "x" * int(history["chars"])
        for n in range(int(history["lines"])):
            host.relay_log.append_chat(st.row, message_id=f"c_h{n}", role="customer",
                                       name="Customer", text=text, draft_id=None, ref=None)
    approvals = [await _propose(host, sessions[int(a["session"])]["session_id"], a)
                 for a in spec.get("approvals", [])]
    sys.stdout.write(json.dumps({
        "approvals": approvals,
        "url": host.local_url, "pid": os.getpid(), "sessions": sessions,
        "desk_token": host.desk_token, "lobby_token": host.lobby_token,
        "admin_token": host.admin_token,
    }) + "\n")
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    commands = asyncio.ensure_future(_commands(host, sessions))
    await stop.wait()
    commands.cancel()
    await host.stop()


async def _commands(host: Any, sessions: list[dict[str, str]]) -> None:
    """Lines on stdin: ``propose {"session": 0, "call_id": .., "marker": ..}`` answers
    ``{"approval": ID}``; ``session`` answers a new session's tokens (JSON lines)."""
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            return
        cmd, _, arg = line.strip().partition(" ")
        if cmd == "propose":
            spec = json.loads(arg)
            out: dict[str, Any] = {"approval": await _propose(
                host, sessions[int(spec["session"])]["session_id"], spec)}
        elif cmd == "session":
            created = host.create_session(customer_id="CUST1001", title="attack test")
            sessions.append({"session_id": created.session_id,
                             "customer_token": created.customer_token,
                             "agent_token": created.agent_token})
            out = {"session": len(sessions) - 1, **sessions[-1]}
        else:
            out = {"error": f"unknown command {cmd!r}"}
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


async def _propose(host: Any, session_id: str, spec: dict[str, Any]) -> str:
    """A pending approval as the co-pilot would create it (shop record, then announced):
    a complaint whose details carry ``spec["marker"]``, so its effect can be found."""
    from hitl_desktop.core.protocol import ApprovalCreated

    copilot = host.relay.copilot
    args = {"user_id": "CUST1001", "type": "other", "details": spec["marker"],
            "order_id": "N/A"}
    rec = await asyncio.to_thread(copilot.store.create_approval, session_id, spec["call_id"],
                                  "create_complaint", args, customer_id="CUST1001")
    tool = copilot.catalog.tool("create_complaint")
    await host.relay.publish(session_id, ApprovalCreated(
        approval_id=rec.approval_id, call_id=rec.call_id, tool=rec.tool,
        description=tool.description, arguments=rec.proposed_arguments,
        parameters_schema=tool.parameters, expires_at=rec.expires_at))
    return str(rec.approval_id)


def main() -> int:
    data_dir = Path(sys.argv[1])
    spec: dict[str, Any] = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    if spec.get("nofile"):
        _limit_files(int(spec["nofile"]))
    from hitl_desktop.cli import configure_logging

    configure_logging(1)  # what ``hitl-desktop -v host`` logs
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(data_dir, spec))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
