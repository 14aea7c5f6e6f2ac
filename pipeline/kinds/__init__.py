"""What each kind of field means: one strategy object per kind (:mod:`.strategies`) that
normalises a value, relates two values (same, variant, more specific, contradiction), checks
that a text supports a value (:mod:`.support`) and gives the form eval compares; with the
shared word lists and text folding (:mod:`.words`) and the place gazetteer (:mod:`.gazetteer`).

A field's kind is declared once, on the schema (:mod:`schemas.kinds`); the registry
(:mod:`schemas.fields`) finds it, and this package says what the kind does. The kinds live in
families: :mod:`.dates`, :mod:`.places`, :mod:`.people`, :mod:`.counts`, :mod:`.labels`, over
:mod:`.base`; :mod:`.normalize` applies them by field path. Speakers and outlets have one
identity authority, with the agency hierarchy that decides what counts as one independent
source (:mod:`.identity`).
"""
