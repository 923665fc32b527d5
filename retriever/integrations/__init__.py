"""Adapters for question-answering frameworks, one module each, imported by name and by nothing else:
`retriever.integrations.langchain`, `.llamaindex`, `.haystack` (each needs its extra, e.g.
`pip install "groundsearch[langchain]"`) and `.dspy` (plain Python; the extra installs DSPy itself).

Each wraps a `Retriever` or a `RemoteRetriever` through their public `search` only, and hands every `Hit` field on
as the framework's document metadata.
"""
