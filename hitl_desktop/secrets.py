"""Where the host finds its OpenAI API key, and where the setup wizard stores it.

Lookup order: the ``OPENAI_API_KEY`` environment variable, the OS keyring
(service ``hitl-desktop``), then a ``0600`` file ``api_key`` in the config dir.
The file exists because a headless Linux box usually has no keyring backend
(DESIGN.md §7): storing must still work there, and say plainly where the key went.
Any keyring failure (no backend, locked, broken D-Bus) is logged and skipped,
never raised. The key itself is never logged.
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

from hitl_desktop.config import Paths

log = logging.getLogger(__name__)

KEYRING_SERVICE = "hitl-desktop"
KEYRING_USER = "openai_api_key"
ENV_VAR = "OPENAI_API_KEY"
KEY_FILE = "api_key"


def key_file(paths: Paths) -> Path:
    """The fallback file (mode 0600) holding the key when no keyring is available."""
    return paths.config_dir / KEY_FILE


def _keyring_get() -> str | None:
    try:
        import keyring

        value = keyring.get_password(KEYRING_SERVICE, KEYRING_USER)
    except Exception as exc:  # no backend / locked / broken: fall through to the file
        log.debug("keyring unavailable for reading: %s", type(exc).__name__)
        return None
    return value if isinstance(value, str) and value.strip() else None


def _keyring_set(key: str) -> bool:
    try:
        import keyring
        from keyring.backends import fail

        if isinstance(keyring.get_keyring(), fail.Keyring):
            return False
        keyring.set_password(KEYRING_SERVICE, KEYRING_USER, key)
    except Exception as exc:
        log.info("keyring unavailable for storing the API key (%s); using a file",
                 type(exc).__name__)
        return False
    return True


def _keyring_delete() -> None:
    try:
        import keyring

        keyring.delete_password(KEYRING_SERVICE, KEYRING_USER)
    except Exception as exc:  # nothing stored, or no backend
        log.debug("keyring delete skipped: %s", type(exc).__name__)


def _read_file(path: Path) -> str | None:
    try:
        value = path.read_text("utf-8").strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("cannot read the API key file %s: %s", path, exc.strerror)
        return None
    if os.name == "posix":
        with contextlib.suppress(OSError):
            if path.stat().st_mode & 0o077:
                log.warning("API key file %s is readable by others; run chmod 600 on it", path)
    return value or None


def env_api_key() -> str | None:
    """The key from ``OPENAI_API_KEY`` (no I/O: safe to call on the event loop)."""
    return os.environ.get(ENV_VAR, "").strip() or None


def stored_api_key(paths: Paths) -> str | None:
    """The key from the keyring or the key file. May block (D-Bus, an unlock
    prompt, disk): call it off the event loop."""
    return _keyring_get() or _read_file(key_file(paths))


def load_api_key(paths: Paths) -> str | None:
    """The configured key, or ``None`` (the caller then uses the offline assistant)."""
    return env_api_key() or stored_api_key(paths)


def key_source(paths: Paths) -> str | None:
    """Where :func:`load_api_key` would find the key: ``env`` | ``keyring`` | ``file``."""
    if env_api_key():
        return "env"
    if _keyring_get():
        return "keyring"
    if _read_file(key_file(paths)):
        return "file"
    return None


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` so that only the owner can ever read it (created 0600, atomically)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, text.encode("utf-8"))
    finally:
        os.close(fd)
    if os.name == "posix":
        os.chmod(tmp, 0o600)
    tmp.replace(path)


def key_destination(paths: Paths) -> str:
    """Where :func:`store_api_key` would put a key now, as a sentence (may block: it
    asks the keyring which backend it has)."""
    try:
        import keyring
        from keyring.backends import fail

        usable = not isinstance(keyring.get_keyring(), fail.Keyring)
    except Exception:
        usable = False
    if usable:
        return f"The API key will be stored in the system keyring (service '{KEYRING_SERVICE}')."
    return (f"No system keyring is available, so the API key will be stored in "
            f"{key_file(paths)} (readable only by you).")


def store_api_key(paths: Paths, key: str) -> str:
    """Store the key (keyring first, else the 0600 file); return where, as a sentence."""
    key = key.strip()
    if not key:
        raise ValueError("the API key is empty")
    path = key_file(paths)
    if _keyring_set(key):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # one place only, so a stale file never shadows a new key
        log.info("API key stored in the OS keyring")
        return f"The API key was stored in the system keyring (service '{KEYRING_SERVICE}')."
    _write_private(path, key + "\n")
    log.info("API key stored in %s (no keyring available)", path)
    return (f"No system keyring is available, so the API key was stored in {path} "
            "(readable only by you).")


def delete_api_key(paths: Paths) -> None:
    """Remove the stored key from the keyring and the file (the env var is not ours)."""
    _keyring_delete()
    with contextlib.suppress(FileNotFoundError):
        key_file(paths).unlink()
