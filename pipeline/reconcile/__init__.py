"""Reconcile: clusters records into incidents (:mod:`.cluster`) and merges each incident's
accounts field by field, with a verdict wherever sources disagree (:mod:`.merge`).
"""
