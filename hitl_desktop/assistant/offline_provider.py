"""Where the host and the factory find the offline assistant (the package ``offline``)."""

from hitl_desktop.assistant.offline import OfflineProvider, make_offline_provider

__all__ = ["OfflineProvider", "make_offline_provider"]
