"""Choose the assistant engine for the host: offline, OpenAI, or an OpenAI-compatible server.

``auto`` (the default) means OpenAI when an API key is configured, else the
offline assistant, so a fresh install with no key and no network still works.
Engines are imported lazily: the offline engine must not pay for the OpenAI
client, and a broken optional engine must not stop the others from loading.
"""

from __future__ import annotations

import logging
from typing import Any

from hitl_desktop.assistant.base import Provider
from hitl_desktop.config import Paths, Settings
from hitl_desktop.secrets import load_api_key

log = logging.getLogger(__name__)

PROVIDERS = ("auto", "offline", "openai", "compatible")


def resolve_provider_name(paths: Paths, settings: Settings, override: str | None = None) -> str:
    """The engine that ``make_provider`` would build: offline | openai | compatible."""
    choice = (override or settings.provider or "auto").strip().lower()
    if choice not in PROVIDERS:
        raise ValueError(f"unknown provider {choice!r}; choose one of {', '.join(PROVIDERS)}")
    if choice == "auto":
        return "openai" if load_api_key(paths) else "offline"
    return choice


def make_provider(paths: Paths, settings: Settings, override: str | None = None,
                  **kwargs: Any) -> Provider:
    """Build the configured engine (``override`` is the ``--provider`` flag)."""
    name = resolve_provider_name(paths, settings, override)
    log.info("assistant engine: %s", name)
    if name == "openai":
        from hitl_desktop.assistant.openai_provider import OpenAIProvider

        return OpenAIProvider.from_settings(paths, settings, **kwargs)
    if name == "compatible":
        from hitl_desktop.assistant.compatible_provider import CompatibleProvider

        return CompatibleProvider.from_settings(paths, settings, **kwargs)
    from hitl_desktop.assistant.offline import make_offline_provider

    return make_offline_provider(paths, settings)
