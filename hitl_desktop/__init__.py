"""HITL Desk: an AI co-pilot drafts, a human support representative decides."""

__version__ = "0.1.0"
