"""``hitl-desktop session new|list|revoke``, ``links rotate`` and ``rep add|list|remove``:
manage sessions, links and representatives straight in a host's data dir.

Why not over the socket: this works whether or not the host is running. The
log is SQLite in WAL mode, so writing a session next to a running host is safe;
the host notices new sessions within a second (``PRAGMA data_version``). The
links use the address the host announced in ``host.json`` unless overridden.
Session tokens are printed once and stored only hashed.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from hitl_desktop.app.services import HOST_FILE, LINK_KINDS, open_directory, rotate_link
from hitl_desktop.config import Settings, resolve_paths
from hitl_desktop.core import identity as ident
from hitl_desktop.core.links import InviteLink
from hitl_desktop.host.desk import decorate, load_state
from hitl_desktop.host.log import RelayLog
from hitl_desktop.host.tokens import TokenKind, Tokens

log = logging.getLogger(__name__)
DEFAULT_PORT = 8765


def _announced(data_dir: Path) -> dict[str, Any]:
    try:
        info = json.loads((data_dir / HOST_FILE).read_text("utf-8"))
        return info if isinstance(info, dict) else {}
    except (FileNotFoundError, ValueError):
        return {}


def new_session(args: argparse.Namespace) -> dict[str, Any]:
    paths = resolve_paths(args.data_dir, getattr(args, "config_dir", None)).ensure()
    settings = Settings.load(paths)
    announced = _announced(paths.data_dir)
    host = args.host_address or announced.get("public_host") or "127.0.0.1"
    port = args.port or announced.get("port") or DEFAULT_PORT
    tls = bool(announced.get("tls", False))
    if not announced and not (args.host_address and args.port):
        log.warning("no host has run on this data dir yet: links use %s:%s", host, port)
    identity = ident.ANONYMOUS
    if args.customer_id:  # a link issued for one customer: verified from the start
        cid = args.customer_id.strip().upper()
        directory = open_directory(paths)
        try:
            name = directory.customer_name(cid) if directory is not None else None
        finally:
            if directory is not None:
                directory.close()
        if name is None:
            raise LookupError(f"no customer {cid!r} in the shop")
        identity = ident.issued_link(cid, name, by="session new", at=time.time())
    relay_log = RelayLog.open_in(paths.data_dir)
    try:
        tokens = Tokens(relay_log)
        row, _frame = relay_log.create_session(
            title=args.title, identity=identity, greeting=settings.greeting,
        )
        customer = tokens.issue(TokenKind.CUSTOMER_SESSION, session_id=row.session_id)
        agent = tokens.issue(TokenKind.AGENT_SESSION, session_id=row.session_id)
    finally:
        relay_log.close()
    return {
        "session_id": row.session_id,
        "title": row.title,
        "customer_id": row.customer_id,
        "identity": row.identity.state,
        "customer_link": str(InviteLink(host, int(port), "customer", customer, tls)),
        "agent_link": str(InviteLink(host, int(port), "agent", agent, tls)),
    }


#: ``session list`` prints this many sessions unless told otherwise (10,000 sessions
#: printed whole were 3.5 MB of JSON: issue 18)
LIST_LIMIT = 100


def list_sessions(args: argparse.Namespace) -> list[dict[str, Any]]:
    """One page of sessions as JSON, most recently active first: ``--limit`` (default
    100; 0 for all), ``--offset`` to page on, ``--open`` for open sessions only. A page
    that leaves sessions out says so on stderr (stdout stays one JSON list)."""
    paths = resolve_paths(args.data_dir, getattr(args, "config_dir", None))
    if not (paths.data_dir / "relay.sqlite3").exists():
        return []
    relay_log = RelayLog.open_in(paths.data_dir)
    try:
        rows = [row for _rowid, row in relay_log.load_sessions()]
        desk = load_state(relay_log.db)  # holder, status, waiting time (issue 16)
    finally:
        relay_log.close()
    if getattr(args, "open_only", False):
        rows = [row for row in rows if row.state == "open"]
    rows.sort(key=lambda r: (r.last_message_at or r.created_at, r.created_at), reverse=True)
    limit = getattr(args, "limit", LIST_LIMIT)
    offset = max(0, getattr(args, "offset", 0))
    page = rows[offset:offset + limit] if limit > 0 else rows[offset:]
    if len(page) < len(rows):
        log.warning("sessions %d-%d of %d (most recently active first); --offset %d for "
                    "the next page, --limit 0 for all", offset + 1 if page else offset,
                    offset + len(page), len(rows), offset + len(page))
    return [decorate(row.summary(), desk.get(row.session_id)).model_dump(mode="json")
            for row in page]


def revoke_session(args: argparse.Namespace) -> dict[str, Any]:
    """Revoke every token of one session; a running host closes their connections (4010)
    within its poll interval (``PRAGMA data_version`` tells it the log changed)."""
    paths = resolve_paths(args.data_dir, getattr(args, "config_dir", None))
    relay_log = RelayLog.open_in(paths.data_dir)
    try:
        if relay_log.get_session(args.session_id) is None:
            raise SystemExit(f"no session {args.session_id!r} in {paths.data_dir}")
        revoked = Tokens(relay_log).revoke_session(args.session_id)
    finally:
        relay_log.close()
    return {"session_id": args.session_id, "revoked_tokens": revoked}


def rotate(args: argparse.Namespace) -> dict[str, Any]:
    """Replace the desk, lobby or admin link (see ``services.rotate_link``)."""
    paths = resolve_paths(args.data_dir, getattr(args, "config_dir", None)).ensure()
    kind = LINK_KINDS[args.which]
    announced = _announced(paths.data_dir)
    relay_log = RelayLog.open_in(paths.data_dir)
    try:
        token, revoked = rotate_link(paths.data_dir, Tokens(relay_log), kind)
    finally:
        relay_log.close()
    link = InviteLink(str(announced.get("public_host") or "127.0.0.1"),
                      int(announced.get("port") or DEFAULT_PORT),
                      "customer" if kind is TokenKind.CUSTOMER_LOBBY else "agent", token,
                      bool(announced.get("tls", False)))
    return {"which": args.which, "link": str(link), "revoked_tokens": len(revoked)}


MAX_REP_NAME = 64


def _rep_name(name: str) -> str:
    clean = " ".join(name.split())
    if not clean or len(clean) > MAX_REP_NAME or not clean.isprintable():
        raise ValueError(f"a representative's name is 1-{MAX_REP_NAME} printable characters")
    return clean


def rep_add(args: argparse.Namespace) -> dict[str, Any]:
    """A personal desk link for one representative: a desk token labelled with the name
    (chat lines, notes and assignments carry it). Printed once; stored only hashed."""
    name = _rep_name(args.name)
    paths = resolve_paths(args.data_dir, getattr(args, "config_dir", None)).ensure()
    announced = _announced(paths.data_dir)
    host = args.host_address or announced.get("public_host") or "127.0.0.1"
    port = args.port or announced.get("port") or DEFAULT_PORT
    if not announced and not (args.host_address and args.port):
        log.warning("no host has run on this data dir yet: the link uses %s:%s", host, port)
    relay_log = RelayLog.open_in(paths.data_dir)
    try:
        tokens = Tokens(relay_log)
        taken = {str(label).casefold() for _id, _kind, label, _at in tokens.representatives()
                 if label}
        if name.casefold() in taken:
            raise ValueError(f"there is a representative called {name!r} already")
        token = tokens.issue(TokenKind.AGENT_DESK, label=name)
    finally:
        relay_log.close()
    link = InviteLink(host, int(port), "agent", token, bool(announced.get("tls", False)))
    return {"rep_id": token.partition(".")[0], "name": name, "link": str(link)}


def rep_list(args: argparse.Namespace) -> list[dict[str, Any]]:
    paths = resolve_paths(args.data_dir, getattr(args, "config_dir", None))
    if not (paths.data_dir / "relay.sqlite3").exists():
        return []
    relay_log = RelayLog.open_in(paths.data_dir)
    try:
        reps = Tokens(relay_log).representatives()
    finally:
        relay_log.close()
    return [{"rep_id": rid, "name": label or ("Host" if kind == TokenKind.ADMIN.value
                                              else "Agent"),
             "link": "admin" if kind == TokenKind.ADMIN.value else
             "personal" if label else "shared desk", "created_at": at}
            for rid, kind, label, at in reps]


def rep_remove(args: argparse.Namespace) -> dict[str, Any]:
    """Revoke a personal desk link by rep id or name; a running host closes its
    connections (4010) within its poll interval. The shared desk and admin links are
    replaced with ``links rotate`` instead."""
    paths = resolve_paths(args.data_dir, getattr(args, "config_dir", None))
    relay_log = RelayLog.open_in(paths.data_dir)
    try:
        tokens = Tokens(relay_log)
        personal = [(rid, str(label)) for rid, kind, label, _at in tokens.representatives()
                    if label and kind == TokenKind.AGENT_DESK.value]
        who = args.who.strip()
        match = ([r for r in personal if r[0] == who]
                 or [r for r in personal if r[1] == who]
                 or [r for r in personal if r[1].casefold() == who.casefold()])
        if len(match) != 1:
            raise LookupError(f"no representative {who!r}" if not match else
                              f"{len(match)} representatives are called {who!r}: use the rep id")
        rep_id, name = match[0]
        tokens.revoke(rep_id)
    finally:
        relay_log.close()
    return {"rep_id": rep_id, "name": name, "revoked": True}


def run(args: argparse.Namespace) -> int:
    if args.mode == "rep":
        try:
            out: Any = {"add": rep_add, "list": rep_list, "remove": rep_remove}[args.rep_cmd](args)
        except (LookupError, ValueError) as exc:
            log.error("%s", exc)
            return 2
    elif args.mode == "links":
        out = rotate(args)
    elif args.session_cmd == "new":
        try:
            out = new_session(args)
        except LookupError as exc:
            log.error("%s", exc)
            return 2
    elif args.session_cmd == "list":
        out = list_sessions(args)
    elif args.session_cmd == "revoke":
        out = revoke_session(args)
    else:  # argparse prevents this
        log.error("unknown session command %r", args.session_cmd)
        return 2
    sys.stdout.write(json.dumps(out) + "\n")
    return 0
