"""bench/load.py end to end, CI-sized: the chat-only host and (when Node and
bench/peers/node_modules are there) the socket.io peer and the ws floor, one client."""

from __future__ import annotations

from typing import Any

from bench import load


def test_the_load_bench_runs_and_reports_ratios(capsys: Any) -> None:
    assert load.main(["--systems", "relay,socketio,ws", "--burst", "1", "--lines", "5",
                      "--paced", "0"]) == 0
    out = capsys.readouterr().out
    assert "burst, S = 1 sessions x 5 lines" in out
    relay = next(line for line in out.splitlines() if line.strip().startswith("relay "))
    assert relay.split()[4] == "5"  # five lines relayed, each timed
    if load.peers_missing() is None:
        assert "socketio" in out and "ws " in out and "1.00x" in out
    else:
        assert "skipping the Node peers" in out
