"""The demo shop: customers, orders, tools that really change rows, approvals, audit."""

from hitl_desktop.store.catalog_file import default_catalog, load_catalog
from hitl_desktop.store.database import DB_FILENAME, ApprovalRecord, ShopDatabase
from hitl_desktop.store.errors import (
    BusinessRuleError,
    Conflict,
    Expired,
    Forbidden,
    NotFound,
    StoreError,
)

__all__ = [
    "DB_FILENAME",
    "ApprovalRecord",
    "BusinessRuleError",
    "Conflict",
    "Expired",
    "Forbidden",
    "NotFound",
    "ShopDatabase",
    "StoreError",
    "default_catalog",
    "load_catalog",
]
