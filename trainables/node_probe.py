"""Checks that run on every node of a cluster before a sweep starts trials there.

They live here, not in `platform/`, because they execute on Ray workers (see
docs/architecture.md). Each returns a reason string when the node cannot do its part,
or None when it can.
"""
import os
import urllib.error
import urllib.request


def http_reachable(url: str, timeout: float = 5.0) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return None if response.status == 200 else f"HTTP {response.status}"
    except (urllib.error.URLError, OSError, ValueError) as error:
        return str(getattr(error, "reason", error))


def file_visible(path: str) -> str | None:
    return None if os.path.exists(path) else f"{path} does not exist on this node"


def node_id() -> str:
    import ray
    return ray.get_runtime_context().get_node_id()
