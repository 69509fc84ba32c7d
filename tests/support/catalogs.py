"""Tool catalogs as a shop would edit them: the shipped ``tools.json`` with changes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hitl_desktop.store.catalog_file import CATALOG_FILENAME, default_catalog


def catalog_data(**policy: float) -> dict[str, Any]:
    """The shipped catalog as JSON data, with these policy values changed."""
    data = default_catalog().to_dict()
    data["policy"].update(policy)
    return data


def write_policy(config_dir: Path, **policy: float) -> Path:
    """Write ``config_dir/tools.json``: the shipped catalog with ``policy`` changed,
    the file a host loads instead of the shipped one."""
    config_dir.mkdir(parents=True, exist_ok=True)
    path = config_dir / CATALOG_FILENAME
    path.write_text(json.dumps(catalog_data(**policy), indent=2), "utf-8")
    return path
