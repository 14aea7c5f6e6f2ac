"""Extract: one validated, cited :class:`schemas.IncidentRecord` per article from an
OpenAI-compatible endpoint or the embedded model. Owns the endpoints (:mod:`.providers`), the
prompt plans (:mod:`.plans`), the two retry layers and the cache key (:mod:`.extractor`) and the
request-rate limiter (:mod:`.ratelimit`).
"""
