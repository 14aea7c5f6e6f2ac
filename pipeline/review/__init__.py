"""Review: the editor's desk as a small local web app (``triangulate serve DIR``): an index of the
run's incidents, each incident's flagged fields with their evidence in context, and buttons that
record decisions in the run store at once. Loopback only by default; no CDN, works offline.
"""
