"""The one wiring of the host's services (``app.services``), which the headless host,
the host window and the demo all use."""

from __future__ import annotations

from pathlib import Path

import pytest

from hitl_desktop.app.services import copilot_factory, start_host
from hitl_desktop.config import Settings, resolve_paths
from hitl_desktop.core.catalog import CatalogError
from hitl_desktop.core.ports import NullCopilot
from hitl_desktop.store.database import DB_FILENAME


async def test_the_offline_engine_is_paced_in_every_mode(tmp_path: Path) -> None:
    paths = resolve_paths(tmp_path / "data", tmp_path / "config")
    settings = Settings(provider="offline", extra={"offline_delay_ms": 3})
    host = await start_host(paths, settings, copilot_factory=copilot_factory(paths, settings))
    try:
        provider = host.relay.copilot.provider  # type: ignore[attr-defined]
        assert provider.name == "offline"
        assert provider.delay_s == pytest.approx(0.003)
    finally:
        await host.stop()


async def test_a_co_pilot_that_cannot_start_leaves_a_chat_only_host(tmp_path: Path) -> None:
    paths = resolve_paths(tmp_path / "data", tmp_path / "config").ensure()
    (paths.data_dir / DB_FILENAME).mkdir()  # the shop database cannot open
    settings = Settings(provider="offline")
    host = await start_host(paths, settings, copilot_factory=copilot_factory(paths, settings))
    try:
        assert isinstance(host.relay.copilot, NullCopilot)
    finally:
        await host.stop()


async def test_an_invalid_tool_catalog_stops_the_host(tmp_path: Path) -> None:
    paths = resolve_paths(tmp_path / "data", tmp_path / "config").ensure()
    (paths.config_dir / "tools.json").write_text("{not json", "utf-8")
    settings = Settings(provider="offline")
    with pytest.raises(CatalogError):
        await start_host(paths, settings, copilot_factory=copilot_factory(paths, settings))
