"""The house's rules, read from the code: rooms import downwards only (data -> trainables ->
platform), and so do platform/'s floors (commands -> reporting, blind_test -> driver -> spec)
while trainables/metrics/ imports nothing of the training loop; no import circle, no module
uses another's private names, and docs/architecture.md lists every file of every room."""
import ast
import re
import subprocess
from pathlib import Path

from tests.helpers import ROOT

ROOMS = ("data", "trainables", "platform")
ARCHITECTURE = ROOT / "docs" / "architecture.md"
# platform/'s floors, top down: the commands (platform/*.py) over the sub-rooms; a floor
# imports only the floors below it and its own
PLATFORM_FLOORS = (("reporting", "blind_test"), ("driver",), ("spec",))
# the only trainables/ modules a metric may import: the torch-free config and the metrics themselves
METRICS_MAY_IMPORT = ("trainables.metrics", "trainables.config")


def _modules() -> dict[str, Path]:
    found = {}
    for room in ROOMS:
        for path in (ROOT / room).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def _imports(path: Path, modules: dict[str, Path]) -> list[tuple[str, str, int]]:
    """(imported module, name or "", line) for every project import anywhere in the file."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in ROOMS:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                out.append((full, "", node.lineno) if full in modules else (node.module, alias.name, node.lineno))
        elif isinstance(node, ast.Import):
            out += [(alias.name, "", node.lineno) for alias in node.names if alias.name.split(".")[0] in ROOMS]
    return out


def _aliases(path: Path, modules: dict[str, Path]) -> dict[str, str]:
    """{local name: project module} for the modules this file imports by name."""
    out = {}
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in ROOMS:
            out.update({alias.asname or alias.name: f"{node.module}.{alias.name}" for alias in node.names
                        if f"{node.module}.{alias.name}" in modules})
        elif isinstance(node, ast.Import):
            out.update({alias.asname: alias.name for alias in node.names if alias.asname and alias.name in modules})
    return out


def test_rooms_import_downwards_only_and_nothing_private():
    modules = _modules()
    wrong = []
    for name, path in modules.items():
        room, where = name.split(".")[0], path.relative_to(ROOT)
        for module, imported, line in _imports(path, modules):
            if ROOMS.index(module.split(".")[0]) > ROOMS.index(room):
                wrong.append(f"{where}:{line} imports {module}, a room above {room}")
            if imported.startswith("_") and module != name:
                wrong.append(f"{where}:{line} imports {module}.{imported}, a private name")
        aliases = _aliases(path, modules)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and re.fullmatch(r"_[A-Za-z]\w*", node.attr) \
                    and isinstance(node.value, ast.Name) and node.value.id in aliases:
                wrong.append(f"{where}:{node.lineno} uses {aliases[node.value.id]}.{node.attr}, a private name")
    assert not wrong, "\n".join(wrong)


def _platform_floor(module: str) -> int:
    """1 + the index of a sub-room's floor in PLATFORM_FLOORS; 0 for a command (platform/X.py)."""
    room = module.split(".")[1]
    return next((1 + i for i, floor in enumerate(PLATFORM_FLOORS) if room in floor), 0)


def test_platform_floors_import_downwards_only():
    modules = _modules()
    wrong = []
    for name, path in modules.items():
        if not name.startswith("platform.") or name.count(".") < 2:
            continue
        for module, _, line in _imports(path, modules):
            if not module.startswith("platform.") or module.split(".")[1] == name.split(".")[1]:
                continue
            if _platform_floor(module) < _platform_floor(name):
                what = "a command" if _platform_floor(module) == 0 else f"a floor above {name.split('.')[1]}/"
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {module}, {what}")
    assert not wrong, "\n".join(wrong)


def test_metrics_import_nothing_of_the_training_loop():
    modules = _modules()
    wrong = [f"{path.relative_to(ROOT)}:{line} imports {module}, outside {' and '.join(METRICS_MAY_IMPORT)}"
             for name, path in modules.items() if name.startswith("trainables.metrics")
             for module, _, line in _imports(path, modules)
             if module.startswith("trainables") and not module.startswith(METRICS_MAY_IMPORT)]
    assert not wrong, "\n".join(wrong)


def test_no_import_circle():
    modules = _modules()
    graph = {name: {m for m, _, _ in _imports(path, modules) if m in modules and m != name and m not in ROOMS
                    and not name.startswith(m + ".")} for name, path in modules.items()}

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            node = todo.pop()
            if node == goal:
                return True
            if node not in seen:
                seen.add(node)
                todo += graph[node]
        return False

    circles = sorted({tuple(sorted((a, b))) for a in graph for b in graph[a] if reaches(b, a)})
    assert not circles, circles


def _listed_files() -> dict[str, set[str]]:
    """{folder: files} from docs/architecture.md's '### `folder/`' sections and their
    '- `file`' bullets."""
    listed, folder = {}, None
    for line in ARCHITECTURE.read_text().splitlines():
        heading = re.match(r"### `([\w/]+)/`", line)
        if heading:
            folder = heading.group(1)
            listed[folder] = set()
        elif line.startswith("## "):
            folder = None
        elif folder and (bullet := re.match(r"- `([\w.]+)`", line)):
            listed[folder].add(bullet.group(1))
    return listed


def test_the_architecture_lists_every_file_of_every_room():
    tracked = subprocess.run(["git", "ls-files", *ROOMS], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    actual: dict[str, set[str]] = {}
    for file in tracked:
        folder, _, name = file.rpartition("/")
        if name != "__init__.py":
            actual.setdefault(folder, set()).add(name)
    listed = _listed_files()
    assert sorted(listed) == sorted(actual), "sections vs folders"
    for folder in actual:
        assert listed[folder] == actual[folder], (folder, listed[folder] ^ actual[folder])
