"""The one test host: a real host (relay, log, tokens; optionally the co-pilot) on
127.0.0.1 port 0, started by ``app.services.start_host`` exactly as the app does.
Relay, UI and co-pilot tests all use it (``tests/ui/conftest`` re-exports it)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from hitl_desktop.app import services
from hitl_desktop.app.services import RunningHost, start_host
from hitl_desktop.config import Settings, resolve_paths
from hitl_desktop.host.relay import CopilotFactory, RelayConfig


@asynccontextmanager
async def running_host(
    data_dir: Path,
    *,
    copilot: bool = False,
    settings: Settings | None = None,
    config: RelayConfig | None = None,
    copilot_factory: CopilotFactory | None = None,
    **kw: Any,
) -> AsyncIterator[RunningHost]:
    """``copilot=True`` wires the assistant as every mode does (offline engine without
    a key, paced) through ``app.services.copilot_factory``; ``copilot_factory`` gives
    one of the test's own; neither: a chat-only relay."""
    paths = resolve_paths(data_dir, data_dir / "config")
    settings = settings or Settings()
    factory = copilot_factory
    if factory is None and copilot:
        # the offline engine plans in the host's thread here (a spawned engine process
        # per test costs a second of CPU); tests/integration/test_engine_process.py and
        # the modes' tests (demo, host window, CLI) run it in its own process
        settings = replace(settings, extra={services.ENGINE_PROCESS: False, **settings.extra})
        factory = services.copilot_factory(paths, settings)
    host = await start_host(paths, settings, port=kw.pop("port", 0), config=config,
                            copilot_factory=factory, **kw)
    try:
        yield host
    finally:
        await host.stop()

