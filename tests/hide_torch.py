"""A pytest plugin that makes torch and sentence-transformers unimportable.

Use: ``pytest -p tests.hide_torch``.

``.ci/run`` runs the unit tests with it, so a unit test that needs torch without saying so
(an ``importorskip`` with a reason, or the ``integration`` marker) fails there.
"""

from __future__ import annotations

import sys

for _name in ("torch", "sentence_transformers", "transformers"):
    sys.modules[_name] = None  # type: ignore[assignment]  # `import` now raises ImportError
