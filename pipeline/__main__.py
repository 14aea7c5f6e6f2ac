"""``python -m pipeline``: the ``triangulate`` command line, for when the script is not on PATH."""

import sys

from pipeline.cli.main import main

sys.exit(main())
