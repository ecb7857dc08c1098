"""What a registered model's name and an alias may look like (shared by the ``register`` op's
config, which must validate without opening a store, and the registry that enforces them).

>>> bool(NAME.match("oil-temperature.v2")), bool(ALIAS.match("9lives"))
(True, False)
"""

from __future__ import annotations

import re

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$")
ALIAS = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,99}$")
