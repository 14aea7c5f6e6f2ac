"""triangulate: cited incident records from news articles, reconciled across sources.

The Python API, for notebooks and scripts (see :mod:`pipeline.api` and README "Python API")::

    import triangulate

    items = triangulate.read_articles("examples/tempe-traffic-stop")
    results = triangulate.extract(items, model="qwen2.5:7b", base_url="http://localhost:11434/v1")
    merged = triangulate.reconcile(results, out="runs/tempe")
    triangulate.report("runs/tempe")

Importing it loads no model client: each function imports the stages it needs when called.
"""

from __future__ import annotations

from pipeline import __version__
from pipeline.api import *  # noqa: F403  (the API is pipeline.api's __all__, re-exported whole)
from pipeline.api import __all__ as _api_names

__all__ = ["__version__", *_api_names]
