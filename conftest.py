"""Make `platform` mean this repo's package under bare `pytest`.

pytest imports the standard library's `platform` before it reads any test, so the repo
root goes first on sys.path and `platform` is imported again from here; the package is a
superset of the standard module, so nothing that already holds the old one breaks.
"""
import os
import sys

ROOT = os.path.dirname(os.path.abspath(__file__))
if sys.path[:1] != [ROOT]:
    sys.path.insert(0, ROOT)
if not hasattr(sys.modules.get("platform"), "__path__"):
    sys.modules.pop("platform", None)
    import platform  # noqa: F401,E402  (the repo's package, now first on the path)
