"""Every mutation of every shipped search space either loads or is a one-line SpecError
naming the section it touched: a key deleted, set to a value of the wrong kind or size,
or an unknown key added (hypothesis draws them; bounded so this runs in seconds)."""
import copy

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from platform.spec import spaces
from platform.spec.typed import SpecError
from tests.helpers import ROOT

FILES = sorted((ROOT / "search_spaces").glob("*.yaml"))
TREES = {f.name: yaml.load(f.read_text(), Loader=spaces.SpecLoader) for f in FILES}


def _paths(tree, prefix=()):
    """Every key path of a parsed YAML tree (list items by index)."""
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, list) else ()
    for key, value in items:
        yield prefix + (key,)
        yield from _paths(value, prefix + (key,))


PATHS = [(name, path) for name, tree in TREES.items() for path in _paths(tree)]
HOSTILE = st.one_of(
    st.none(), st.booleans(), st.text(max_size=12),
    st.integers(min_value=-(10**20), max_value=10**20), st.sampled_from([-7, 0, -1, 10**18, 10**400]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))


@st.composite
def mutations(draw):
    name, path = draw(st.sampled_from(PATHS))
    kind = draw(st.sampled_from(["delete", "set", "add"]))
    return name, path, kind, (None if kind == "delete" else draw(HOSTILE))


def _mutated(tree, path, kind, value):
    tree = copy.deepcopy(tree)
    node = tree
    for key in path[:-1]:
        node = node[key]
    if kind == "delete":
        del node[path[-1]]
    elif kind == "set":
        node[path[-1]] = value
    elif isinstance(node[path[-1]], dict):
        node[path[-1]]["no_such_key"] = value
    else:
        node[path[-1]] = {"no_such_key": value}
    return tree


@settings(max_examples=400, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutations())
def test_a_mutated_search_space_loads_or_names_the_key(tmp_path, mutation):
    name, path, kind, value = mutation
    file = tmp_path / name
    file.write_text(yaml.safe_dump(_mutated(TREES[name], path, kind, value), allow_unicode=True))
    try:
        spaces.load(file)
    except SpecError as error:
        message = str(error)
        assert message.startswith(f"{file}: ") and "\n" not in message, message
        assert str(path[0]) in message, (path, message)  # the section it touched, at least

