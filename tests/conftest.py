"""Shared test set-up: every test runs against its own temporary user dirs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from hitl_desktop.core.threads import enable_loop_check

REPO = Path(__file__).resolve().parent.parent

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# The threading rule's debug check (core/threads.py), on for every test and for the
# processes tests start (CLI, demo): a store used on an event loop's thread raises.
os.environ["HITL_LOOP_CHECK"] = "1"
enable_loop_check()


@pytest.fixture(autouse=True)
def isolated_user_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point every platformdirs-derived path and secret store at tmp_path, so no test
    reads or writes a real user's config, data, keyring or API key."""
    home = tmp_path / "home"
    for var, sub in (
        ("HITL_DATA_DIR", "data"),
        ("HITL_CONFIG_DIR", "config"),
        ("XDG_DATA_HOME", "xdg-data"),
        ("XDG_CONFIG_HOME", "xdg-config"),
        ("XDG_CACHE_HOME", "xdg-cache"),
        ("XDG_STATE_HOME", "xdg-state"),
    ):
        monkeypatch.setenv(var, str(tmp_path / sub))
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    # LAN discovery stays on loopback: no test sends multicast off this machine
    monkeypatch.setenv("HITL_MDNS_INTERFACES", "127.0.0.1")
    for var in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID"):
        monkeypatch.delenv(var, raising=False)
    home.mkdir()
    yield tmp_path


@pytest.fixture
def recorded_streams() -> Path:
    """The Responses API streams the tests replay: the real recordings from
    shared/fixtures (copied byte for byte, checked by test_stream) plus the
    documented-* streams built from the platform docs, which only live here."""
    return REPO / "tests" / "data" / "openai-recorded"
