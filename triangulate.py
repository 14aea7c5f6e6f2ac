"""triangulate: cited incident records from news articles, reconciled across sources.

The Python API, for notebooks and scripts (see :mod:`pipeline.api` and README "Python API")::

    import triangulate

    items = triangulate.read_articles("examples/tempe-traffic-stop")
    results = triangulate.extract(items, model="qwen2.5:7b", base_url="http://localhost:11434/v1")
    merged = triangulate.reconcile(results, out="runs/tempe")
    triangulate.report("runs/tempe")

Nothing is imported until a name is used: ``import triangulate`` loads no stage and no model client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pipeline import __version__

if TYPE_CHECKING:
    from pipeline.api import (
        Article,
        ExportSummary,
        ExtractionResult,
        FailureRow,
        IncidentRecord,
        ReconcileResult,
        RunData,
        RunOptions,
        RunWarning,
        export,
        extract,
        load_run,
        read_articles,
        reconcile,
        report,
        run,
    )

__all__ = [
    "__version__",
    "read_articles",
    "extract",
    "reconcile",
    "run",
    "load_run",
    "report",
    "export",
    "Article",
    "ExportSummary",
    "ExtractionResult",
    "FailureRow",
    "IncidentRecord",
    "ReconcileResult",
    "RunData",
    "RunOptions",
    "RunWarning",
]


def __getattr__(name: str) -> Any:
    if name in __all__ and name != "__version__":
        from pipeline import api

        value = getattr(api, name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'triangulate' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
