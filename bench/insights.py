"""A 30-day Insights report over 10,000 conversations (budget: < 2 s on this machine).

One run, two computations of the same report over the same stores:

1. ``host.insights.report``: what the host and ``hitl-desktop report`` run (one SQL
   pass per store with ``json_extract`` in SQLite, bit-parallel edit distance);
2. ``host.insights.naive_report``: the obvious per-row Python computation (every
   session's rows fetched one session at a time, every frame ``json.loads``-ed, a
   textbook dynamic-programming edit distance).

Both must give the same report (checked). The stores are filled by the generator
of the insights tests (``tests/support/insights_gen.py``: known composition) unless
``--data-dir`` names a filled one. The fast report runs ``--repeat`` times: best
and median wall time and the CPU time of the best run are printed (the machine is
shared: CPU time says what the work costs when another process takes a core).
``--quick`` uses 1,000 conversations.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from hitl_desktop.host.insights import naive_report, report  # noqa: E402
from tests.support.insights_gen import DAY, T0, generate  # noqa: E402

BUDGET_S = 2.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--conversations", type=int, default=10_000)
    ap.add_argument("--quick", action="store_true", help="1,000 conversations")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--data-dir", type=Path, default=None,
                    help="a data dir the generator filled before (T0, 30 days)")
    a = ap.parse_args()
    n = 1000 if a.quick else a.conversations
    with tempfile.TemporaryDirectory() as tmp:
        data = a.data_dir or Path(tmp) / "data"
        if a.data_dir is None:
            began = time.perf_counter()
            generate(data, n)
            print(f"generated {n:,} conversations in {time.perf_counter() - began:.1f} s")
        start, end = T0, T0 + 30 * DAY
        walls, cpus = [], []
        fast = None
        for _ in range(a.repeat):
            w0, c0 = time.perf_counter(), time.process_time()
            fast = report(data, start, end)
            walls.append(time.perf_counter() - w0)
            cpus.append(time.process_time() - c0)
        assert fast is not None
        w0, c0 = time.perf_counter(), time.process_time()
        slow = naive_report(data, start, end)
        naive_wall, naive_cpu = time.perf_counter() - w0, time.process_time() - c0
    same = fast.model_dump(exclude={"generated_at"}) == slow.model_dump(exclude={"generated_at"})
    best = min(walls)
    print(f"30-day report over {fast.conversations:,} conversations "
          f"({fast.outcomes.drafts:,} drafts, {fast.edits.changed:,} edited or replaced, "
          f"{fast.gap_questions:,} gap questions)")
    print(f"  report:       best {best:.3f} s, median {statistics.median(walls):.3f} s wall "
          f"over {a.repeat} runs; CPU {cpus[walls.index(best)]:.3f} s")
    print(f"  naive:        {naive_wall:.3f} s wall, CPU {naive_cpu:.3f} s")
    print(f"  ratio naive/report (wall, best run): {naive_wall / best:.1f}x")
    print(f"  same report: {same}")
    print(f"  budget {BUDGET_S:.1f} s: {'met' if best < BUDGET_S else 'MISSED'}")
    return 0 if same and best < BUDGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
