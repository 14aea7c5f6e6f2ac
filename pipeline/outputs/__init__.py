"""Outputs: what a finished run is read as. A run read back from its folder (:mod:`.rundata`),
dashboard tables defined once (:mod:`.tables`) and written to SQLite and PostgreSQL through
SQLAlchemy Core (:mod:`.database`) or as Parquet and CSV (:mod:`.export`), the review page from
jinja2 templates (:mod:`.report`), one article's audit trail (:mod:`.show`) and accuracy against
gold annotations (:mod:`.evaluate`).
"""
