"""``hitl-desktop session list`` prints one page, most recently active first (issue 18:
10,000 sessions printed whole were 3.5 MB). A real data dir, the real CLI process."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from hitl_desktop.core.protocol import Author, ChatMessage, Role, SessionClosed
from hitl_desktop.host.log import RelayLog


def listed(data: Path, *args: str) -> tuple[list[dict[str, Any]], str]:
    out = subprocess.run([sys.executable, "-m", "hitl_desktop", "session", "list",
                          "--data-dir", str(data), *args],
                         capture_output=True, text=True, timeout=60, check=True)
    return json.loads(out.stdout), out.stderr


def test_session_list_pages_most_recent_first(tmp_path: Path) -> None:
    data = tmp_path / "hostdata"
    log = RelayLog.open_in(data)
    try:
        rows = [log.create_session(title=f"chat {i}")[0] for i in range(7)]
        time.sleep(0.01)
        ann = Author(role=Role.CUSTOMER, name="Ann")
        log.append(rows[2], ChatMessage(message_id="m1", author=ann, text="hello?"))
        log.append(rows[5], SessionClosed(by="Dana"))
    finally:
        log.close()
    everyone, note = listed(data, "--limit", "0")
    assert not note
    order = [s["session_id"] for s in everyone]
    assert len(order) == 7 and order[0] == rows[2].session_id  # the latest chat line first
    page1, note1 = listed(data, "--limit", "3")
    assert [s["session_id"] for s in page1] == order[:3]
    assert "sessions 1-3 of 7" in note1 and "--offset 3" in note1
    page3, note3 = listed(data, "--limit", "3", "--offset", "6")
    assert [s["session_id"] for s in page3] == order[6:] and "sessions 7-7 of 7" in note3
    open_ones, _ = listed(data, "--open", "--limit", "0")
    assert rows[5].session_id not in {s["session_id"] for s in open_ones}
    assert len(open_ones) == 6
    default, _ = listed(data)
    assert len(default) == 7  # under the default page of 100
