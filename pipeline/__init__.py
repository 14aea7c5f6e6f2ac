"""triangulate: cited incident records from news articles, reconciled across sources.

The Python API (:mod:`pipeline.api`) is importable from here without loading any stage:
``from pipeline import read_articles, run, load_run, report, export``. Two of its functions,
``reconcile`` and ``extract``, share their names with the stage packages :mod:`pipeline.reconcile`
and :mod:`pipeline.extract`, so here those names stay the packages; take the functions from
``triangulate`` (``import triangulate; triangulate.reconcile(...)``) or :mod:`pipeline.api`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

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
        load_run,
        read_articles,
        report,
        run,
    )

# pipeline.api's names, less "reconcile" and "extract", the stage packages of this one: a module
# __getattr__ only runs for names the module lacks, so "reconcile" would be the function before
# ``import pipeline.reconcile`` and the package after it.
__all__ = [
    "__version__",
    "read_articles",
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
    # Imported on first use, so `import pipeline` (and every `import pipeline.<stage>`) stays cheap.
    if name in __all__ and name != "__version__":
        from pipeline import api

        return getattr(api, name)
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
