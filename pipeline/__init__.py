"""triangulate's stage packages (see docs/ARCHITECTURE.md). The Python API is
:mod:`pipeline.api`, re-exported as the top-level module ``triangulate``."""

__version__ = "0.1.0"
