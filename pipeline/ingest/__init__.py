"""Ingest: turns input paths (files, folders, JSONL feeds) into :class:`schemas.Article` objects,
and every input it cannot read into one :class:`schemas.FailureRow` with a reason.
"""
