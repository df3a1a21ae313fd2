"""Protocols: thin steps that read inputs, fan out tasks and write outputs (science lives in methods)."""

from tomoforge.protocols import bibliography  # noqa: F401  (registers the BibTeX entries)
