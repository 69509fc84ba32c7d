"""The knowledge base: Markdown articles (``articles``), the local BM25 index
(``index``), text helpers the index and the offline NLU share (``text``) and
the OpenAI vector-store sync (``vector_store``).

Article ids are ``"{kind}/{slug}"`` everywhere, so a hit from the local index,
a hosted file_search result and the article viewer all name the same file.
Import the submodules directly; this package module stays import-free so the
UI can use ``articles`` without pulling in SQLite or the OpenAI client.
"""
