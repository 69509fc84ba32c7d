"""``hitl-desktop open LINK``: what the ``hitl://`` URL handler runs. Opens the
customer or agent window that the link's role names."""

from __future__ import annotations

import argparse
import logging
import sys

from hitl_desktop.core.links import InvalidLink, InviteLink

log = logging.getLogger(__name__)


def run(args: argparse.Namespace) -> int:
    try:
        link = InviteLink.parse(args.link)
    except InvalidLink as exc:
        sys.stderr.write(f"hitl-desktop: cannot open this link: {exc}\n")
        return 2
    log.info("opening %s window for %s:%s", link.role, link.host, link.port)
    if link.role == "agent":
        from hitl_desktop.app import agent

        return agent.run(args)
    from hitl_desktop.app import customer

    return customer.run(args)
