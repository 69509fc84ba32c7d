"""The shop database: tool execution, durable approvals, audit log.

One SQLite file (WAL) in the data dir. All writes run in ``BEGIN IMMEDIATE``
transactions, so an approval is executed exactly once even when two agents
approve at the same moment, a client retries, or a second process opens the
same file: the state check, the tool's writes, the approval's new state and
its audit row commit together or not at all.

The API is synchronous and thread-safe (one connection behind a lock). It is
never called on the event loop: code there goes through ``self.worker``, the
store's own thread (docs/ARCHITECTURE.md, "The threading rule"); a write can
wait up to 15 s for another process's transaction.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from hitl_desktop.core.catalog import InvalidArguments, ToolCatalog
from hitl_desktop.core.protocol import CustomerMatch
from hitl_desktop.core.threads import StoreLock, StoreWorker
from hitl_desktop.store import tools as shop_tools
from hitl_desktop.store.errors import BusinessRuleError, Conflict, Expired, Forbidden, NotFound
from hitl_desktop.store.plans import describe
from hitl_desktop.store.schema import DDL, SCHEMA_VERSION, load_seed, seed_database
from hitl_desktop.store.sqlite_files import check_not_emptied, damaged_as_error, make_private

log = logging.getLogger(__name__)

DB_FILENAME: Final = "shop.sqlite3"
ApprovalState = Literal["pending", "approved", "executed", "failed", "rejected", "expired",
                        "cancelled"]
Clock = Callable[[], float]


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


@dataclass(frozen=True, slots=True)
class ActionCheck:
    """The dry run of a sensitive action: would it succeed, and what would it do."""

    ok: bool
    summary: str | None = None  # plain words of what approving will do (ok only)
    result: dict[str, Any] | None = None  # the dry run's output (ok only)
    error: str | None = None  # why the shop refuses it (not ok)


@dataclass(frozen=True, slots=True)
class ApprovalRecord:
    """One proposed action awaiting (or past) a representative's decision."""

    approval_id: str
    session_id: str
    call_id: str
    tool: str
    customer_id: str | None
    proposed_arguments: dict[str, Any]
    approved_arguments: dict[str, Any] | None
    state: ApprovalState
    created_at: float
    expires_at: float
    decided_by: str | None = None
    decided_at: float | None = None
    reason: str | None = None
    result: dict[str, Any] | None = None
    error: str | None = None

    @property
    def id(self) -> str:
        return self.approval_id

    @property
    def edited(self) -> bool:
        """Did the representative change the model's arguments before approving?"""
        return (
            self.approved_arguments is not None
            and self.approved_arguments != self.proposed_arguments
        )

    @property
    def arguments(self) -> dict[str, Any]:
        """The arguments that ran (or would run): approved if decided, else proposed."""
        return self.approved_arguments if self.approved_arguments is not None else (
            self.proposed_arguments
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (for logs, exports and status displays)."""
        return {
            "approval_id": self.approval_id,
            "session_id": self.session_id,
            "call_id": self.call_id,
            "tool": self.tool,
            "customer_id": self.customer_id,
            "proposed_arguments": self.proposed_arguments,
            "approved_arguments": self.approved_arguments,
            "state": self.state,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "decided_by": self.decided_by,
            "decided_at": self.decided_at,
            "reason": self.reason,
            "result": self.result,
            "error": self.error,
        }

    def model_output(self) -> dict[str, Any]:
        """What the model is told about this action (the function_call_output)."""
        if self.state == "pending":
            return {
                "ok": False,
                "status": "awaiting_approval",
                "approval_id": self.approval_id,
                "message": "This action needs the support representative's approval and has "
                "NOT been carried out yet. Tell the customer you are looking into it; do not "
                "say it is done.",
            }
        if self.state in ("executed", "failed"):
            out: dict[str, Any] = dict(self.result or {"ok": False, "error": self.error})
            out["approved_by"] = self.decided_by
            if self.edited:
                out["note"] = "The representative changed the arguments before approving."
                out["arguments"] = self.approved_arguments
            return out
        if self.state == "rejected":
            return {
                "ok": False,
                "status": "rejected",
                "rejected_by": self.decided_by,
                "reason": self.reason,
                "message": "The support representative rejected this action; it was not "
                "carried out.",
            }
        if self.state == "cancelled":
            return {
                "ok": False,
                "status": "cancelled",
                "reason": self.reason,
                "message": "The request was cancelled before a representative decided (the "
                "conversation was closed); the action was not carried out.",
            }
        return {
            "ok": False,
            "status": self.state,
            "message": "The approval request expired before a representative decided; the "
            "action was not carried out.",
        }

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> ApprovalRecord:
        return cls(
            approval_id=row["id"],
            session_id=row["session_id"],
            call_id=row["call_id"],
            tool=row["tool"],
            customer_id=row["customer_id"],
            proposed_arguments=json.loads(row["proposed_arguments"]),
            approved_arguments=_loads(row["approved_arguments"]),
            state=row["state"],
            created_at=row["created_at"],
            expires_at=row["expires_at"],
            decided_by=row["decided_by"],
            decided_at=row["decided_at"],
            reason=row["reason"],
            result=_loads(row["result"]),
            error=row["error"],
        )


class ShopDatabase:
    """The demo shop, its tools and the approval queue, in one SQLite file."""

    def __init__(
        self, conn: sqlite3.Connection, catalog: ToolCatalog, *, clock: Clock, path: Path
    ) -> None:
        self._conn = conn
        self._lock = StoreLock("the shop database", reentrant=True)
        self.worker = StoreWorker("database")  # the loop calls us only through it
        self._clock = clock
        self.catalog = catalog
        self.path = path
        missing = [t.name for t in catalog if t.name not in shop_tools.IMPLEMENTATIONS]
        if missing:
            log.warning("catalog tools without an implementation (they will fail): %s", missing)

    # ---------------------------------------------------------------- lifecycle

    @classmethod
    def open(
        cls,
        path: str | Path,
        catalog: ToolCatalog,
        *,
        clock: Clock = time.time,
        seed: dict[str, Any] | None = None,
    ) -> ShopDatabase:
        """Open (creating and seeding on first use) the shop at ``path``; a
        directory (or a path without a file suffix) means ``path / "shop.sqlite3"``."""
        p = Path(path)
        if p.is_dir() or not p.suffix:
            p = p / DB_FILENAME
        p.parent.mkdir(parents=True, exist_ok=True)
        check_not_emptied(p, "shop database")
        conn = sqlite3.connect(p, timeout=15.0, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        try:
            with damaged_as_error(p, "shop database"):
                conn.execute("PRAGMA busy_timeout = 15000")
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = NORMAL")
                conn.execute("PRAGMA foreign_keys = ON")
                db = cls(conn, catalog, clock=clock, path=p)
                db._migrate(seed)
        except BaseException:
            conn.close()
            raise
        make_private(p)
        return db

    def _migrate(self, seed: dict[str, Any] | None) -> None:
        with self._tx() as conn:
            self._allow_cancelled(conn)
            for stmt in DDL.split(";"):
                if stmt.strip():
                    conn.execute(stmt)
            row = conn.execute("SELECT value FROM meta WHERE key = 'seeded_at'").fetchone()
            if row is None:
                now = self._clock()
                seed_database(conn, seed if seed is not None else load_seed(), now)
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('seeded_at', ?), ('schema', ?)",
                    (repr(now), str(SCHEMA_VERSION)),
                )
                log.info("created the shop database %s", self.path)

    @staticmethod
    def _allow_cancelled(conn: sqlite3.Connection) -> None:
        """A shop file from before approvals could be ``cancelled`` (a session closed
        with the action pending): rebuild the table with the wider CHECK, rows kept."""
        row = conn.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'approvals'"
        ).fetchone()
        if row is None or "'cancelled'" in row[0]:
            return
        conn.execute("ALTER TABLE approvals RENAME TO approvals_old")
        conn.execute("DROP INDEX IF EXISTS approvals_session")
        conn.execute("DROP INDEX IF EXISTS approvals_due")
        for stmt in DDL.split(";"):
            if "approvals" in stmt and "approvals_old" not in stmt and stmt.strip():
                conn.execute(stmt)
        conn.execute("INSERT INTO approvals SELECT * FROM approvals_old")
        conn.execute("DROP TABLE approvals_old")
        log.info("shop database: approvals may now be cancelled")

    def check_action(
        self, name: str, args: Mapping[str, Any] | str, *, customer_id: str | None
    ) -> ActionCheck:
        """Dry-run a sensitive action with the code that executes it, then roll back.

        The same rules, the same customer restriction, the same transaction as
        :meth:`approve_and_execute`; nothing is written. A success comes with
        what approving will do in plain words (:func:`store.plans.describe`).
        """
        try:
            valid = self.catalog.validate_arguments(name, args)
        except InvalidArguments as exc:
            return ActionCheck(ok=False, error=exc.message)
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute("SAVEPOINT dry_run")
                result, error = self._execute(
                    self._conn, name, valid, customer_id=customer_id, approval_id=None)
                self._conn.execute("ROLLBACK TO dry_run")
                summary = None if error is not None else describe(self._conn, name, valid,
                                                                  result)
            finally:
                self._conn.execute("ROLLBACK")
        if error is not None:
            return ActionCheck(ok=False, error=error)
        return ActionCheck(ok=True, summary=summary, result=result)

    def cancel_pending(self, session_id: str, reason: str,
                       by: str = "system") -> list[ApprovalRecord]:
        """Cancel every pending approval of a session (it was closed by ``by``, who is
        then the one who decided them, as agents were told); return them."""
        now = self._clock()
        with self._tx() as conn:
            rows = conn.execute(
                "SELECT * FROM approvals WHERE session_id = ? AND state = 'pending' "
                "ORDER BY created_at", (session_id,)).fetchall()
            done = []
            for r in rows:
                rec = ApprovalRecord.from_row(r)
                conn.execute(
                    "UPDATE approvals SET state = 'cancelled', decided_by = ?, "
                    "decided_at = ?, reason = ? WHERE id = ? AND state = 'pending'",
                    (by, now, reason, rec.approval_id))
                self._audit(
                    conn, actor=by, event="cancelled", tool=rec.tool, ok=False,
                    arguments=None, proposed=rec.proposed_arguments, session_id=session_id,
                    call_id=rec.call_id, approval_id=rec.approval_id,
                    customer_id=rec.customer_id, error=f"cancelled: {reason}")
                done.append(self._load(conn, rec.approval_id))
        return done

    def close(self) -> None:
        with self._lock:
            self._conn.close()
        self.worker.shutdown()

    def __enter__(self) -> ShopDatabase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: the thread lock, then SQLite's write lock."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                yield self._conn
            finally:
                self._conn.execute("COMMIT")

    def now(self) -> float:
        return self._clock()

    # ---------------------------------------------------------------- tools

    def _execute(
        self,
        conn: sqlite3.Connection,
        name: str,
        args: dict[str, Any],
        *,
        customer_id: str | None,
        approval_id: str | None,
    ) -> tuple[dict[str, Any], str | None]:
        """Run one tool inside the caller's transaction; rule violations roll back
        only the tool's own writes. Returns (model-facing result, error)."""
        impl = shop_tools.IMPLEMENTATIONS.get(name)
        if impl is None:
            msg = f"the tool {name} is not implemented on this host"
            return {"ok": False, "error": msg}, msg
        ctx = shop_tools.ToolContext(
            conn=conn,
            now=self._clock(),
            policy=self.catalog.policy,
            customer_id=customer_id.strip().upper() if customer_id else None,
            approval_id=approval_id,
        )
        conn.execute("SAVEPOINT tool")
        try:
            result = impl(ctx, args)
        except BusinessRuleError as exc:
            conn.execute("ROLLBACK TO tool")
            conn.execute("RELEASE tool")
            return {"ok": False, "error": exc.message}, exc.message
        except Exception:
            conn.execute("ROLLBACK TO tool")
            conn.execute("RELEASE tool")
            log.exception("tool %s crashed with %s", name, args)
            msg = f"internal error while running {name}; nothing was changed"
            return {"ok": False, "error": msg}, msg
        conn.execute("RELEASE tool")
        return result, None

    def _audit(
        self,
        conn: sqlite3.Connection,
        *,
        actor: str,
        event: str,
        tool: str,
        ok: bool,
        arguments: dict[str, Any] | None,
        proposed: dict[str, Any] | None = None,
        session_id: str | None = None,
        call_id: str | None = None,
        approval_id: str | None = None,
        customer_id: str | None = None,
        result: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        conn.execute(
            "INSERT INTO audit_log (ts, actor, event, tool, session_id, call_id, approval_id, "
            "customer_id, proposed_arguments, arguments, ok, result, error) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                self._clock(), actor, event, tool, session_id, call_id, approval_id, customer_id,
                None if proposed is None else _dumps(proposed),
                None if arguments is None else _dumps(arguments),
                int(ok), None if result is None else _dumps(result), error,
            ),
        )

    def run_tool(
        self,
        name: str,
        args: Mapping[str, Any] | str,
        *,
        actor: str = "assistant",
        customer_id: str | None = None,
        session_id: str | None = None,
        call_id: str | None = None,
    ) -> dict[str, Any]:
        """Run a tool that needs no approval and return its model-facing result.

        Unknown tools, schema violations and rule violations come back as
        ``{"ok": False, "error": ...}`` for the model. A tool the catalog says
        needs approval raises :class:`Forbidden`: it must go through
        :meth:`create_approval`. ``customer_id`` (the conversation's customer)
        restricts the tool to that customer's account and orders.
        """
        if name not in self.catalog:
            return {"ok": False, "error": f"unknown tool {name!r}"}
        if self.catalog.needs_approval(name):
            raise Forbidden(f"{name} needs a representative's approval")
        try:
            valid = self.catalog.validate_arguments(name, args)
        except InvalidArguments as exc:
            return {"ok": False, "error": exc.message}
        with self._tx() as conn:
            result, error = self._execute(
                conn, name, valid, customer_id=customer_id, approval_id=None
            )
            if name not in shop_tools.READ_ONLY_TOOLS:
                self._audit(
                    conn, actor=actor, event="auto", tool=name, ok=error is None,
                    arguments=valid, session_id=session_id, call_id=call_id,
                    customer_id=customer_id, result=result, error=error,
                )
        return result

    # ---------------------------------------------------------------- approvals

    def _load(self, conn: sqlite3.Connection, approval_id: str) -> ApprovalRecord:
        row = conn.execute("SELECT * FROM approvals WHERE id = ?", (approval_id,)).fetchone()
        if row is None:
            raise NotFound(f"no approval {approval_id!r}")
        return ApprovalRecord.from_row(row)

    def create_approval(
        self,
        session_id: str,
        call_id: str,
        tool: str,
        arguments: Mapping[str, Any] | str,
        ttl_s: float | None = None,
        *,
        customer_id: str | None = None,
        expires_at: float | None = None,
    ) -> ApprovalRecord:
        """Queue a proposed action. Raises :class:`InvalidArguments` for an unknown
        tool or arguments outside its schema (tell the model). The same
        (session_id, call_id) returns the existing record: retries are harmless.
        The deadline is ``expires_at``, else now + ``ttl_s``, else the policy's TTL."""
        valid = self.catalog.validate_arguments(tool, arguments)
        ttl = self.catalog.policy.approval_ttl_s if ttl_s is None else ttl_s
        now = self._clock()
        deadline = now + ttl if expires_at is None else expires_at
        with self._tx() as conn:
            row = conn.execute(
                "SELECT * FROM approvals WHERE session_id = ? AND call_id = ?",
                (session_id, call_id),
            ).fetchone()
            if row is not None:
                existing = ApprovalRecord.from_row(row)
                if existing.tool != tool:
                    raise Conflict(
                        f"call {call_id!r} of session {session_id!r} is already an approval "
                        f"for {existing.tool}"
                    )
                return existing
            approval_id = f"apr_{uuid.uuid4().hex[:16]}"
            conn.execute(
                "INSERT INTO approvals (id, session_id, call_id, tool, customer_id, "
                "proposed_arguments, state, created_at, expires_at) "
                "VALUES (?,?,?,?,?,?,'pending',?,?)",
                (approval_id, session_id, call_id, tool, customer_id, _dumps(valid), now,
                 deadline),
            )
            return self._load(conn, approval_id)

    def _expire(self, conn: sqlite3.Connection, rec: ApprovalRecord, now: float) -> ApprovalRecord:
        conn.execute(
            "UPDATE approvals SET state = 'expired', decided_by = 'system', decided_at = ? "
            "WHERE id = ? AND state = 'pending'",
            (now, rec.approval_id),
        )
        self._audit(
            conn, actor="system", event="expired", tool=rec.tool, ok=False, arguments=None,
            proposed=rec.proposed_arguments, session_id=rec.session_id, call_id=rec.call_id,
            approval_id=rec.approval_id, customer_id=rec.customer_id,
            error="approval expired",
        )
        return self._load(conn, rec.approval_id)

    def _decide(
        self,
        approval_id: str,
        verb: str,
        decision: Callable[[sqlite3.Connection, ApprovalRecord, float], None],
    ) -> ApprovalRecord:
        """The frame every decision shares, in one transaction: only a pending approval
        may be decided (else Conflict); one past its deadline is marked expired, that
        is committed, and Expired is raised; otherwise ``decision`` writes the outcome."""
        expired = False
        with self._tx() as conn:
            rec = self._load(conn, approval_id)
            if rec.state != "pending":
                by = f" by {rec.decided_by}" if rec.decided_by else ""
                raise Conflict(f"approval {approval_id} was already {rec.state}{by}")
            now = self._clock()
            if now >= rec.expires_at:
                self._expire(conn, rec, now)
                expired = True
            else:
                decision(conn, rec, now)
                done = self._load(conn, approval_id)
        if expired:
            raise Expired(f"approval {approval_id} expired before it was {verb}")
        return done

    def approve_and_execute(
        self,
        approval_id: str,
        agent: str,
        arguments: Mapping[str, Any] | None = None,
    ) -> ApprovalRecord:
        """Approve and run the action exactly once, in one transaction.

        Raises NotFound, Conflict (already decided: executed, failed, rejected),
        Expired, or InvalidArguments (edited arguments outside the schema; the
        approval stays pending so the representative can fix them). A business
        rule refusal is not an exception: the record comes back ``failed`` with
        ``error`` set, audited like a success.
        """

        def execute(conn: sqlite3.Connection, rec: ApprovalRecord, now: float) -> None:
            chosen = rec.proposed_arguments if arguments is None else arguments
            valid = self.catalog.validate_arguments(rec.tool, chosen)
            result, error = self._execute(
                conn, rec.tool, valid, customer_id=rec.customer_id, approval_id=approval_id
            )
            state = "executed" if error is None else "failed"
            conn.execute(
                "UPDATE approvals SET state = ?, approved_arguments = ?, decided_by = ?, "
                "decided_at = ?, result = ?, error = ? WHERE id = ? AND state = 'pending'",
                (state, _dumps(valid), agent, now, _dumps(result), error, approval_id),
            )
            self._audit(
                conn, actor=agent, event=state, tool=rec.tool, ok=error is None,
                arguments=valid, proposed=rec.proposed_arguments, session_id=rec.session_id,
                call_id=rec.call_id, approval_id=approval_id, customer_id=rec.customer_id,
                result=result, error=error,
            )

        done = self._decide(approval_id, "approved", execute)
        log.info("approval %s (%s) %s by %s", approval_id, done.tool, done.state, agent)
        return done

    def reject(self, approval_id: str, agent: str, reason: str) -> ApprovalRecord:
        """Reject a pending action with the reason the model will be told."""
        reason = reason.strip()
        if not reason:
            raise InvalidArguments("a reason is required to reject an action", path="reason")

        def record(conn: sqlite3.Connection, rec: ApprovalRecord, now: float) -> None:
            conn.execute(
                "UPDATE approvals SET state = 'rejected', decided_by = ?, decided_at = ?, "
                "reason = ? WHERE id = ? AND state = 'pending'",
                (agent, now, reason, approval_id),
            )
            self._audit(
                conn, actor=agent, event="rejected", tool=rec.tool, ok=False,
                arguments=None, proposed=rec.proposed_arguments, session_id=rec.session_id,
                call_id=rec.call_id, approval_id=approval_id, customer_id=rec.customer_id,
                error=f"rejected: {reason}",
            )

        return self._decide(approval_id, "rejected", record)

    def expire_due(self, now: float | None = None) -> list[ApprovalRecord]:
        """Expire every pending approval whose deadline has passed; return them."""
        at = self._clock() if now is None else now
        with self._tx() as conn:
            rows = conn.execute(
                "SELECT * FROM approvals WHERE state = 'pending' AND expires_at <= ? "
                "ORDER BY created_at",
                (at,),
            ).fetchall()
            return [self._expire(conn, ApprovalRecord.from_row(r), at) for r in rows]

    def approval_arguments(self, approval_id: str) -> dict[str, Any]:
        """The model's proposed arguments of an approval (raises NotFound)."""
        rec = self.get_approval(approval_id)
        if rec is None:
            raise NotFound(f"no approval {approval_id!r}")
        return dict(rec.proposed_arguments)

    def get_approval(self, approval_id: str) -> ApprovalRecord | None:
        with self._read() as conn:
            row = conn.execute("SELECT * FROM approvals WHERE id = ?", (approval_id,)).fetchone()
        return None if row is None else ApprovalRecord.from_row(row)

    def pending_approvals(self, session_id: str | None = None) -> list[ApprovalRecord]:
        """Pending, not yet due approvals (of one session, or all), oldest first."""
        now = self._clock()
        sql = "SELECT * FROM approvals WHERE state = 'pending' AND expires_at > ?"
        params: list[Any] = [now]
        if session_id is not None:
            sql += " AND session_id = ?"
            params.append(session_id)
        with self._read() as conn:
            rows = conn.execute(sql + " ORDER BY created_at, rowid", params).fetchall()
        return [ApprovalRecord.from_row(r) for r in rows]

    def approvals_since(self, created_after: float) -> list[ApprovalRecord]:
        """Every approval created after ``created_after``, in any state, oldest first
        (the start-up reconciliation's window)."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT * FROM approvals WHERE created_at > ? ORDER BY created_at, rowid",
                (created_after,),
            ).fetchall()
        return [ApprovalRecord.from_row(r) for r in rows]

    def approvals_of(self, session_id: str) -> list[ApprovalRecord]:
        """Every approval of a session, in any state, oldest first."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT * FROM approvals WHERE session_id = ? ORDER BY created_at, rowid",
                (session_id,),
            ).fetchall()
        return [ApprovalRecord.from_row(r) for r in rows]

    # ---------------------------------------------------------------- read side

    def customer(self, customer_id: str) -> dict[str, Any] | None:
        """The customer panel's profile (None if unknown)."""
        cid = customer_id.strip().upper()
        with self._read() as conn:
            row = conn.execute("SELECT * FROM customers WHERE id = ?", (cid,)).fetchone()
            if row is None:
                return None
            (orders,) = conn.execute(
                "SELECT COUNT(*) FROM orders WHERE customer_id = ?", (cid,)
            ).fetchone()
            (tickets,) = conn.execute(
                "SELECT COUNT(*) FROM tickets WHERE customer_id = ? AND status = 'open'", (cid,)
            ).fetchone()
        return {
            "customer_id": row["id"],
            "name": row["name"],
            "email": row["email"],
            "phone": row["phone"],
            "address": row["address"],
            "tier": row["tier"],
            "member_since": shop_tools.iso_date(row["created_at"]),
            "order_count": int(orders),
            "open_tickets": int(tickets),
        }

    # ---------------------------------------------------------------- customer directory

    def customer_names(self) -> dict[str, str]:
        """Every customer's name by id (the relay's in-memory directory of names)."""
        with self._read() as conn:
            rows = conn.execute("SELECT id, name FROM customers").fetchall()
        return {str(r["id"]): str(r["name"]) for r in rows}

    def customer_name(self, customer_id: str) -> str | None:
        """The customer's name (None if unknown): inbox rows, chat author names."""
        with self._read() as conn:
            row = conn.execute("SELECT name FROM customers WHERE id = ?",
                               (customer_id.strip().upper(),)).fetchone()
        return None if row is None else str(row["name"])

    def order_owner(self, order_id: str) -> str | None:
        """The customer id an order belongs to (None if there is no such order)."""
        with self._read() as conn:
            row = conn.execute("SELECT customer_id FROM orders WHERE id = ?",
                               (order_id.strip().upper(),)).fetchone()
        return None if row is None else str(row["customer_id"])

    def match_sign_in(self, email: str, order_id: str) -> str | None:
        """The customer id if ``email`` is a customer's and ``order_id`` is one of their
        orders; None otherwise. One query for every case (unknown email, unknown order,
        someone else's order), so the answer and its cost say nothing about which half
        was wrong."""
        with self._read() as conn:
            row = conn.execute(
                "SELECT c.id FROM customers c JOIN orders o ON o.customer_id = c.id "
                "WHERE lower(c.email) = ? AND o.id = ?",
                (email.strip().lower(), order_id.strip().upper()),
            ).fetchone()
        return None if row is None else str(row["id"])

    def find_customers(self, query: str, limit: int = 20) -> list[CustomerMatch]:
        """Customers by name, email or id (substring, case-insensitive) or by one of their
        order ids (exact), for a representative's "Find customer…"; ``*`` lists all."""
        q = query.strip()
        if not q:
            return []
        if q == "*":  # everyone, by name (the host window's "New session…" picker)
            q = ""
        like = "%" + q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        with self._read() as conn:
            rows = conn.execute(
                "SELECT c.id, c.name, c.email, (SELECT COUNT(*) FROM orders o2 "
                "WHERE o2.customer_id = c.id) AS n FROM customers c "
                "WHERE lower(c.name) LIKE ? ESCAPE '\\' OR lower(c.email) LIKE ? ESCAPE '\\' "
                "OR lower(c.id) LIKE ? ESCAPE '\\' "
                "OR c.id IN (SELECT customer_id FROM orders WHERE id = ?) "
                "ORDER BY c.name, c.id LIMIT ?",
                (like, like, like, q.upper(), limit),
            ).fetchall()
        return [CustomerMatch(customer_id=r["id"], name=r["name"], email=r["email"],
                              order_count=int(r["n"])) for r in rows]

    def orders_of(self, customer_id: str) -> list[dict[str, Any]]:
        """Full details of a customer's orders, newest first."""
        cid = customer_id.strip().upper()
        now = self._clock()
        with self._read() as conn:
            rows = conn.execute(
                "SELECT * FROM orders WHERE customer_id = ? ORDER BY created_at DESC, id DESC",
                (cid,),
            ).fetchall()
            return [shop_tools.order_details(conn, r, now, self.catalog.policy) for r in rows]

    def order(self, order_id: str) -> dict[str, Any] | None:
        now = self._clock()
        with self._read() as conn:
            row = conn.execute(
                "SELECT * FROM orders WHERE id = ?", (order_id.strip().upper(),)
            ).fetchone()
            if row is None:
                return None
            return shop_tools.order_details(conn, row, now, self.catalog.policy)

    def audit_rows(
        self,
        *,
        approval_id: str | None = None,
        tool: str | None = None,
        session_id: str | None = None,
        limit: int = 200,
    ) -> list[dict[str, Any]]:
        """Audit entries, oldest first, JSON columns decoded."""
        sql = "SELECT * FROM audit_log WHERE 1=1"
        params: list[Any] = []
        for col, val in (("approval_id", approval_id), ("tool", tool), ("session_id", session_id)):
            if val is not None:
                sql += f" AND {col} = ?"
                params.append(val)
        sql += " ORDER BY id LIMIT ?"
        params.append(limit)
        with self._read() as conn:
            rows = conn.execute(sql, params).fetchall()
        out = []
        for r in rows:
            d = dict(r)
            for key in ("proposed_arguments", "arguments", "result"):
                d[key] = _loads(d[key])
            d["ok"] = bool(d["ok"])
            out.append(d)
        return out

    def count(self, table: str) -> int:
        """Rows in one of the shop's tables (for status displays and tests)."""
        with self._read() as conn:
            names = {
                r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
            if table not in names:
                raise NotFound(f"no table {table!r}")
            (n,) = conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()
        return int(n)
