"""Outputs: what a finished run is read as. Dashboard tables (:mod:`.tables`) written as Parquet,
CSV, SQLite or PostgreSQL (:mod:`.export`), the review page (:mod:`.report`), one article's audit
trail (:mod:`.show`) and accuracy against gold annotations (:mod:`.evaluate`).
"""
