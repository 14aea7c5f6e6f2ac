"""Who stands behind a cited value: the kinds of attribution a speaker id can have.

Reconciliation counts independent sources, and whether two citations are one
source depends on what kind of voice each is: five outlets relaying one DHS
statement are one source, an outlet's own reporting is that outlet, a relayed
report ("CBS News reported") is the relayed outlet. The ids themselves come from
:mod:`pipeline.kinds.identity`, which also says which kind an id is.
"""

from __future__ import annotations

from typing import Literal, get_args

AttributionKind = Literal[
    "outlet",  # the article's own voice: the outlet that published it
    "relayed",  # another outlet's report, relayed ("CBS News reported", "according to NBC Chicago")
    "agency",  # an agency or government body: its statement, its spokesperson, an unnamed official of it
    "official",  # a named person speaking for an agency ("DHS spokesperson Carla Whitfield")
    "anonymous_official",  # an official not named: of a known agency ("a senior ICE source") or of none
    "anonymous",  # unnamed sources not said to be officials ("sources familiar with the case")
    "witness",  # a witness, bystander, neighbour or resident, named or not
    "family",  # relatives, or someone speaking for the family ("his mother", "relatives said")
    "social_post",  # a social media post embedded in the article ("— Jane Roe (@janeroe) ...")
    "person",  # anyone else: a named person, or one described without a name
]

ATTRIBUTION_KINDS: tuple[AttributionKind, ...] = get_args(AttributionKind)
