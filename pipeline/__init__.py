"""triangulate: cited incident records from news articles, reconciled across sources."""

__version__ = "0.1.0"
