"""API key lookup and storage: env, keyring, 0600 file; never crashing on a broken keyring."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator

import keyring
import pytest
from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError

from hitl_desktop.config import Paths, resolve_paths
from hitl_desktop.secrets import (
    delete_api_key,
    key_file,
    key_source,
    load_api_key,
    store_api_key,
)

KEY = "sk-test-0123456789abcdef"


class MemoryKeyring(KeyringBackend):
    """A working keyring backend (what a desktop session has)."""

    priority = 1

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.store: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.store.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.store[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.store.pop((service, username), None) is None:
            raise PasswordDeleteError("not found")


class BrokenKeyring(KeyringBackend):
    """A backend whose D-Bus connection is gone: every call raises something odd."""

    priority = 1

    def get_password(self, service: str, username: str) -> str | None:
        raise RuntimeError("org.freedesktop.DBus.Error.ServiceUnknown")

    def set_password(self, service: str, username: str, password: str) -> None:
        raise OSError("locked collection")

    def delete_password(self, service: str, username: str) -> None:
        raise RuntimeError("gone")


@pytest.fixture
def paths() -> Paths:
    return resolve_paths().ensure()


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


def test_headless_fallback_file_is_private(paths: Paths, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    assert load_api_key(paths) is None and key_source(paths) is None
    where = store_api_key(paths, f"  {KEY}\n")
    assert str(key_file(paths)) in where and "No system keyring" in where
    assert stat.S_IMODE(os.stat(key_file(paths)).st_mode) == 0o600
    assert load_api_key(paths) == KEY and key_source(paths) == "file"
    assert KEY not in caplog.text  # never logged
    delete_api_key(paths)
    assert load_api_key(paths) is None and not key_file(paths).exists()


def test_env_wins(paths: Paths, monkeypatch: pytest.MonkeyPatch) -> None:
    store_api_key(paths, KEY)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    assert load_api_key(paths) == "sk-from-env" and key_source(paths) == "env"


def test_keyring_used_when_available(paths: Paths, memory_keyring: MemoryKeyring) -> None:
    key_file(paths).write_text("sk-stale\n")
    where = store_api_key(paths, KEY)
    assert "system keyring" in where
    assert memory_keyring.store[("hitl-desktop", "openai_api_key")] == KEY
    assert not key_file(paths).exists()  # no stale copy left behind
    assert load_api_key(paths) == KEY and key_source(paths) == "keyring"
    delete_api_key(paths)
    assert memory_keyring.store == {} and load_api_key(paths) is None
    delete_api_key(paths)  # deleting twice is fine


def test_broken_keyring_never_crashes(paths: Paths) -> None:
    previous = keyring.get_keyring()
    keyring.set_keyring(BrokenKeyring())  # type: ignore[no-untyped-call]
    try:
        assert load_api_key(paths) is None
        where = store_api_key(paths, KEY)
        assert "api_key" in where
        assert load_api_key(paths) == KEY
        delete_api_key(paths)
        assert load_api_key(paths) is None
    finally:
        keyring.set_keyring(previous)


def test_empty_key_rejected(paths: Paths) -> None:
    with pytest.raises(ValueError, match="empty"):
        store_api_key(paths, "   ")
