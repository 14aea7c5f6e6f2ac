"""Batch: drives a whole run, from inputs to records, failure rows and reconciled incidents, with
bounded concurrency, rate limits, resumption and a circuit breaker (:mod:`.runner`).
"""
