"""What each kind of field means: how a value of that kind is normalised and how two values of it
relate (same, variant, more specific, contradiction), with the shared word lists (:mod:`.words`)
and the place gazetteer (:mod:`.gazetteer`).

A field's kind is declared once, on the schema (:mod:`schemas.kinds`); the registry
(:mod:`schemas.fields`) finds it, and this package says what the kind does.
"""
