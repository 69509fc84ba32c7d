"""The offline assistant as a package: one obvious place for each thing.

``history`` (typed turns) -> ``understanding`` (requests and slots, with
``speller``, ``lexicon``, ``slots``, ``intents``) -> ``planner`` (one
``records`` entry per intent) -> ``retrieval`` -> ``composer`` (``texts``,
``sections``, ``outcomes``, ``writer``) -> ``events`` (the Responses stream);
``engine`` ties them together.
"""

from hitl_desktop.assistant.offline.engine import OfflineProvider, make_offline_provider

__all__ = ["OfflineProvider", "make_offline_provider"]
