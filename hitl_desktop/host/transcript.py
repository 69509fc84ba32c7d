"""A session's transcript as Markdown, rendered from its logged frames (issue 16).

Two audiences: ``customer`` is exactly what the customer saw (the greeting, the chat
lines, the conversation closing and reopening: the types a customer socket receives);
``internal`` adds what only agents saw: internal notes, assignment and status changes,
identity changes, whether a line was sent from the co-pilot's draft (and the draft
when it was edited), and each proposed action with who decided it. Pure: frames in,
text out, so it runs in the desk store's worker and tests call it directly.

Every text a person wrote is escaped, so a customer cannot add headings or links to the
exported document by typing Markdown.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable
from typing import Any, Final, Literal

from hitl_desktop.core.protocol import AGENT_ONLY_TYPES

Audience = Literal["customer", "internal"]
#: the longest transcript sent (characters); longer ones are cut with a note
MAX_MARKDOWN_CHARS: Final = 1_900_000
#: frames read for one transcript, at most (a longer conversation's says where it stops)
MAX_FRAMES: Final = 20_000

_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+\-.!|~])")


def escape(text: str) -> str:
    """Markdown-inert text: every special character backslash-escaped, line breaks kept."""
    lines = [_SPECIAL.sub(r"\\\1", line) for line in text.splitlines() or [""]]
    return "  \n".join(lines)


def _when(ts: Any) -> str:
    try:
        return time.strftime("%Y-%m-%d %H:%M", time.gmtime(float(ts)))
    except (TypeError, ValueError, OverflowError):
        return "?"


def _name(author: Any) -> str:
    if not isinstance(author, dict):
        return "?"
    return escape(str(author.get("name") or author.get("role") or "?"))


def render(frames: Iterable[str], *, session_id: str, title: str, audience: Audience,
           now: float | None = None, max_frames: int = MAX_FRAMES,
           max_chars: int = MAX_MARKDOWN_CHARS) -> str:
    """The transcript of one session from its frames (seq order). Reading stops after
    ``max_frames`` frames or once the text passes ``max_chars``, so the cost of one
    transcript is bounded whatever the session's length; the text then says so."""
    internal = audience == "internal"
    out: list[str] = [
        f"# {escape(title)}",
        "",
        f"Session `{session_id}` · "
        + ("internal transcript (with notes and actions)" if internal
           else "what the customer saw")
        + f" · exported {_when(time.time() if now is None else now)} UTC",
        "",
    ]
    drafts: dict[str, str] = {}  # turn id -> the co-pilot's completed draft
    tools: dict[str, str] = {}  # approval id -> tool
    size = sum(len(line) + 1 for line in out)
    stopped: str | None = None
    for n, frame in enumerate(frames):
        if n >= max_frames:
            stopped = ("_The transcript stops here: the conversation has more than "
                       f"{max_frames:,} messages._")
            break
        if size > max_chars:
            stopped = "_The transcript was cut here: it is too long for one export._"
            break
        try:
            env = json.loads(frame)
            type_, data, ts = str(env["type"]), env["data"], env.get("ts")
        except (ValueError, KeyError, TypeError):
            continue
        if not internal and type_ in AGENT_ONLY_TYPES:
            continue
        lines = _lines(type_, data, ts, internal, drafts, tools)
        if lines:
            out.extend(lines)
            out.append("")
            size += sum(len(line) + 1 for line in lines) + 1
    text = "\n".join(out).rstrip() + "\n"
    if len(text) > max_chars:
        text = text[:max_chars].rsplit("\n", 1)[0] + "\n"
        stopped = "_The transcript was cut here: it is too long for one export._"
    return text + ("\n" + stopped + "\n" if stopped else "")


def _lines(type_: str, data: Any, ts: Any, internal: bool, drafts: dict[str, str],
           tools: dict[str, str]) -> list[str]:
    if not isinstance(data, dict):
        return []
    at = _when(ts)
    if type_ == "session.opened":
        greeting = data.get("greeting")
        return [f"_Conversation opened {at} UTC._"] + (
            ["", f"**Greeting** · {at}", "", escape(str(greeting))] if greeting else [])
    if type_ == "chat.message":
        author = data.get("author") or {}
        role = author.get("role") if isinstance(author, dict) else None
        head = f"**{_name(author)}**"
        if internal and role not in (None, "customer"):
            head += f" ({escape(str(role))})"
        lines = [f"{head} · {at}", "", escape(str(data.get("text", "")))]
        if internal and data.get("draft_id"):
            draft_id = str(data["draft_id"])
            if data.get("edited") is True:
                lines += ["", "_Sent from the co-pilot's draft, edited. The draft said:_", ""]
                lines += ["> " + line for line in escape(drafts.get(draft_id, "?")).split("\n")]
            elif data.get("edited") is False:
                lines += ["", "_Sent from the co-pilot's draft as it was._"]
        return lines
    if type_ == "session.closed":
        return [f"_Conversation closed by {escape(str(data.get('by', '?')))} · {at}._"]
    if type_ == "session.reopened":
        return [f"_Conversation reopened by {escape(str(data.get('by', '?')))} · {at}._"]
    if type_ == "session.gap":  # the host lost its log's last lines in an unclean stop
        first, last = data.get("first_seq"), data.get("last_seq")
        return [f"**Messages lost** · {at}", "",
                f"_The host stopped unexpectedly and lost messages {escape(str(first))} to "
                f"{escape(str(last))} of this conversation: anything said just before "
                "this point may be missing here, though people may have seen it._"]
    if not internal:
        return []
    if type_ == "draft.completed":
        drafts[str(data.get("turn_id"))] = str(data.get("text", ""))
        return []
    if type_ == "note.added":
        body = escape(str(data.get("text", ""))).split("\n")
        return [f"> **Internal note** by {_name(data.get('author'))} · {at}", ">"] + [
            "> " + line for line in body]
    if type_ == "session.assigned":
        by = escape(str(data.get("by", "?")))
        assignee = data.get("assignee")
        if isinstance(assignee, dict):
            return [f"_Assigned to {_name(assignee)} by {by} · {at}._"]
        return [f"_Released (unassigned) by {by} · {at}._"]
    if type_ == "session.status_changed":
        return [f"_Status: {escape(str(data.get('status')))} (was "
                f"{escape(str(data.get('previous')))}), by {escape(str(data.get('by', '?')))}"
                f" · {at}._"]
    if type_ == "identity.changed":
        ident = data.get("identity") or {}
        state = escape(str(ident.get("state", "?")))
        who = ident.get("customer_name") or ident.get("customer_id")
        what = f"{state} as {escape(str(who))}" if who else state
        return [f"_Customer identity: {what} ({escape(str(data.get('action')))} by "
                f"{escape(str(data.get('by', '?')))}) · {at}._"]
    if type_ == "approval.created":
        approval_id, tool = str(data.get("approval_id")), str(data.get("tool", "?"))
        tools[approval_id] = tool
        what = data.get("summary") or data.get("description") or ""
        args = json.dumps(data.get("arguments") or {}, ensure_ascii=False, sort_keys=True)
        return [f"**Action proposed:** `{tool}` · {at}", "",
                escape(str(what)), "", f"Arguments: {escape(args)}"]
    if type_ == "approval.updated":
        tool = tools.get(str(data.get("approval_id")), "?")
        state = str(data.get("state", "?"))
        decider = data.get("by")
        line = f"**Action {escape(state)}:** `{tool}`" + (
            f" by {escape(str(decider))}" if decider else "") + f" · {at}"
        extra = []
        if data.get("reason"):
            extra.append(f"Reason: {escape(str(data['reason']))}")
        if data.get("error"):
            extra.append(f"Error: {escape(str(data['error']))}")
        return [line] + (["", *extra] if extra else [])
    return []
