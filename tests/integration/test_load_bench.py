"""bench/load.py end to end, CI-sized: the chat-only host and (when Node and
bench/peers/node_modules are there) the socket.io peer and the ws floor, one client,
a warm-up round, then two rounds in alternating order."""

from __future__ import annotations

import importlib.util
from typing import Any

from bench import load


def test_the_load_bench_runs_rounds_in_alternating_order_and_reports_ratios(
        capsys: Any) -> None:
    assert load.main(["--systems", "relay,socketio,ws", "--burst", "1", "--lines", "5",
                      "--paced", "0", "--rounds", "2", "--warmup", "1"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    rounds = [line for line in lines if line.startswith("burst, S = 1 sessions x 5 lines, round")]
    assert sum("warm-up round 1/1" in line for line in lines) == 1
    relays = [line for line in lines  # the rounds' rows, not the summary's "relay / ..."
              if line.split()[:1] == ["relay"] and line.split()[1] != "/"]
    assert len(rounds) == 2 and len(relays) == 3  # the warm-up's row too
    assert all(r.split()[4] == "5" for r in relays)  # five lines relayed, each timed
    if load.peers_missing() is None:
        assert rounds[0].endswith("(order: relay, socketio, ws)")
        assert rounds[1].endswith("(order: ws, socketio, relay)")
        assert "1.00x" in out
        summary = next(line for line in lines if line.strip().startswith("relay / socketio")
                       and "hop p50" in line)
        ratios = summary.split("rounds:")[1].split()
        # one ratio per round (not the warm-up's), marked with which of the two ran first
        assert len(ratios) == 2 and ratios[0].endswith("<") and ratios[1].endswith(">")
    else:
        assert "skipping the Node peers" in out
        assert rounds[0].endswith("(order: relay)")


def test_orders_put_every_pair_in_both_orders() -> None:
    plan = load.orders(["a", "b", "c"], 4, "alternate", None)
    assert plan == [["a", "b", "c"], ["c", "b", "a"]] * 2
    shuffled = load.orders(["a", "b", "c"], 5, "random", 7)
    assert shuffled == load.orders(["a", "b", "c"], 5, "random", 7)  # the seed repeats it
    assert all(sorted(o) == ["a", "b", "c"] for o in shuffled)
    assert load.orders(["a", "b"], 2, "fixed", None) == [["a", "b"], ["a", "b"]]


def test_the_python_floors_relay_every_line(capsys: Any) -> None:
    """The websockets floor always runs (it is the project's own dependency); picows is
    run when installed, else skipped with a message naming how to get it."""
    assert load.main(["--systems", "pyws,picows,picows-log,picows-journal", "--burst", "2",
                      "--lines", "4", "--paced", "0", "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines()
            if line.split()[:1] in (["pyws"], ["picows"], ["picows-log"], ["picows-journal"])
            and line.split()[1] != "/"]
    assert ["pyws"] in [r[:1] for r in rows]
    assert all(r[4] == "8" for r in rows)  # 2 sessions x 4 lines, each timed
    if importlib.util.find_spec("picows") is None:
        assert "skipping the picows floors: picows is not installed" in out
    else:
        assert {"picows", "picows-log", "picows-journal"} <= {r[0] for r in rows}


def test_the_paced_run_prints_the_copilots_cpu_per_draft(capsys: Any) -> None:
    """The shipped host and the relay-only host relay the same lines in a round (the
    schedule is seeded; the relay-only host's agents answer each line as the shipped
    host's send their drafts), and the round prints the co-pilot's CPU per draft: the
    difference, per round and in the summary."""
    assert load.main(["--systems", "relay,shipped", "--burst", "", "--paced", "3",
                      "--seconds", "2", "--interval", "1", "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    rows = {(r[0], i): r for i, r in enumerate(line.split() for line in lines)
            if r[:1] in (["relay"], ["shipped"]) and r[1] != "/"}
    relayed = {}
    for (name, _i), r in rows.items():
        relayed.setdefault(name, []).append(int(r[4]))
    assert relayed["relay"] == relayed["shipped"]  # the same lines, round by round
    assert all(n > 0 for n in relayed["relay"])
    shares = [line for line in lines
              if line.strip().startswith("co-pilot per draft (shipped - relay, same round)")]
    assert len(shares) == 1 and all("host process" in s and "engine process" in s
                                    for s in shares)
    assert any(line.strip().startswith("co-pilot per draft (shipped - relay) host process")
               and "median" in line for line in lines)
