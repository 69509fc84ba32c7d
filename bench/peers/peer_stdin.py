"""The Python peers' side of bench.load's contract with every peer (Node's too): print
``{"port": N}`` once listening, answer a ``cpu`` line on stdin with ``{"cpu_s": T}``, and
return when stdin closes (the peer then exits)."""

from __future__ import annotations

import asyncio
import json
import os
import sys


async def serve_until_stdin_closes(port: int) -> None:
    print(json.dumps({"port": port}), flush=True)
    loop = asyncio.get_running_loop()
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        if line.strip() == "cpu":
            t = os.times()
            print(json.dumps({"cpu_s": t.user + t.system}), flush=True)
