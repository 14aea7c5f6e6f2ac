"""The ``triangulate`` command line: the only package that knows about flags. Each command parses
its options and calls the stage packages' typed functions.
"""
