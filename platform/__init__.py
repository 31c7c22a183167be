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


# ---------- a command started with a Python that lacks the project's dependencies ----------

_NEEDED = ("yaml", "ray", "mlflow", "optuna", "torch")  # what every command but bootstrap imports
_NO_CHECK = ("bootstrap",)  # stdlib only: it is how the project's Python is made


def _command() -> str | None:
    """The `X` of `python -m platform.X` when that is how this process started, else None
    (a Ray worker, a test, another program that imports `platform`)."""
    import sys
    argv = list(getattr(sys, "orig_argv", []))[1:]
    for i, arg in enumerate(argv):
        module = argv[i + 1] if arg == "-m" and i + 1 < len(argv) else arg[2:] if arg.startswith("-m") else None
        if module is not None:
            return module[len("platform."):] if module.startswith("platform.") else None
        if not arg.startswith("-"):  # a script or `-c`'s code: not a command of ours
            return None
    return None


def _require_the_projects_python() -> None:
    """Started as `python -m platform.X` by a Python without the project's dependencies (the
    system's `python3` instead of `.venv/bin/python`): one sentence saying which Python to
    use and how to make it, before anything else is printed, and exit status 2."""
    command = _command()
    if command is None or command.split(".")[0] in _NO_CHECK:
        return
    import importlib.util
    import sys
    missing = []
    for name in _NEEDED:
        try:  # a folder of the same name in the working directory is a namespace package, not it
            found = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            found = None
        if found is None or found.origin in (None, "namespace"):
            missing.append(name)
    if not missing:
        return
    root = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
    venv_python = _os.path.join(root, ".venv", "bin", "python")
    made = "" if _os.path.exists(venv_python) else f"once set up with `python3 -m platform.bootstrap` in {root}, "
    print(f"platform.{command}: this Python ({sys.executable}) lacks the project's dependencies "
          f"({', '.join(missing)}); run it with the project's Python, {made}"
          f"`{venv_python} -m platform.{command} ...`.", file=sys.stderr)
    raise SystemExit(2)


_require_the_projects_python()
