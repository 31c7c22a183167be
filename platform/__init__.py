"""The project's command package, which also stands in for the standard library's `platform`.

Run from the repo root, this directory shadows the standard module that torch, ray,
mlflow and pytest import (`platform.system()`, `platform.uname()`, ...). So we load the
standard library's file by path under the module name "platform" (pickled
`platform.uname()` results name that module) and re-export every public and private
name: this package is a superset of the module it hides. Keep this file stdlib-only and
cheap: every Ray worker imports it.
"""
import importlib.util as _ilu
import os as _os
import sysconfig as _sysconfig

_STDLIB_FILE = _os.path.join(_sysconfig.get_paths()["stdlib"], "platform.py")
_spec = _ilu.spec_from_file_location("platform", _STDLIB_FILE)
_stdlib_platform = _ilu.module_from_spec(_spec)
_spec.loader.exec_module(_stdlib_platform)

for _name, _value in vars(_stdlib_platform).items():
    if not (_name.startswith("__") and _name.endswith("__")):
        globals()[_name] = _value

del _name, _value, _spec
