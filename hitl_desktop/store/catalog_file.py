"""Reading the tool catalog file: the user's ``tools.json`` or the shipped one.

Kept out of ``core`` so the catalog logic stays free of I/O. The user's copy
in the config dir wins, so descriptions, limits and which tools need approval
can be changed without touching the installed app.
"""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path
from typing import Final

from hitl_desktop.core.catalog import CatalogError, ToolCatalog

log = logging.getLogger(__name__)

CATALOG_FILENAME: Final = "tools.json"


def default_catalog_text() -> str:
    """The catalog shipped with the app (``hitl_desktop/data/tools.json``)."""
    return resources.files("hitl_desktop").joinpath("data", CATALOG_FILENAME).read_text("utf-8")


def default_catalog() -> ToolCatalog:
    return ToolCatalog.from_json(default_catalog_text(), source="hitl_desktop/data/tools.json")


def catalog_path(config_dir: Path | None) -> Path | None:
    """The user's override file, if there is one."""
    if config_dir is None:
        return None
    candidate = config_dir / CATALOG_FILENAME
    return candidate if candidate.is_file() else None


def load_catalog(path_or_config_dir: str | Path | None = None) -> ToolCatalog:
    """Load a catalog file, a config dir's ``tools.json``, or the shipped default.

    A user file that exists but is invalid raises :class:`CatalogError` naming the
    problem (the host refuses to start rather than silently changing policy).
    """
    if path_or_config_dir is None:
        return default_catalog()
    p = Path(path_or_config_dir)
    file = p if not p.is_dir() else catalog_path(p)
    if file is None:
        return default_catalog()
    try:
        text = file.read_text("utf-8")
    except OSError as exc:
        raise CatalogError(f"{file}: cannot read the tool catalog: {exc}") from exc
    catalog = ToolCatalog.from_json(text, source=str(file))
    log.info("loaded the tool catalog %s (%d tools)", file, len(catalog))
    return catalog
