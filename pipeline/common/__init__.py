"""Plumbing every stage shares and no stage owns: writing files atomically (:mod:`.atomic`) and
scrubbing secrets from any text bound for a store, a log or a terminal (:mod:`.redact`).

Nothing here imports another part of :mod:`pipeline`.
"""
