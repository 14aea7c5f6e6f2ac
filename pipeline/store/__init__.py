"""Store: the run folder and everything in it. :class:`.runfolder.RunFolder` names every file,
:class:`.runstore.RunStore` owns the tables of ``triangulate.sqlite`` and their append-only
migrations (:mod:`.migrations`), and :mod:`.runlock` keeps one writer per folder.
"""
