"""A local Ray's authentication token, kept under the storage root instead of the user's home.

Ray turns token authentication on for every new local cluster whose mode the user left
unset and, finding no token, writes one to `~/.ray/auth_token` (readable by everyone under
the usual umask) and warns about it at the top of the sweep's output. The platform keeps the
protection and moves the secret: unless the user chose (`RAY_AUTH_MODE`, `RAY_AUTH_TOKEN` or
`RAY_AUTH_TOKEN_PATH` set), a local Ray gets `RAY_AUTH_MODE=token` and
`RAY_AUTH_TOKEN_PATH=<storage root>/ray/auth_token`, made once, readable by its owner only.
Nothing is written outside the storage root, and the warning is gone because the mode is set.
A cluster's token is the cluster's business (docs/cluster.md).
"""
import os
import secrets
from pathlib import Path

USER_CHOICES = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")
TOKEN = Path("ray") / "auth_token"
_chosen: dict[str, str] = {}  # what this process set, which a later sweep in it may replace


def _set_here() -> bool:
    """Are Ray's variables the ones an earlier call here set (not the user's)?"""
    return bool(_chosen) and all(os.environ.get(name) == _chosen.get(name) for name in USER_CHOICES)


def use_local_token(root: str | os.PathLike) -> Path | None:
    """Point this process (and the Ray it starts) at the token under `root`, made if missing;
    None where the user chose Ray's authentication themselves."""
    if any(os.environ.get(name) for name in USER_CHOICES) and not _set_here():
        return None
    path = Path(root) / TOKEN
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        descriptor = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as out:
            out.write(secrets.token_hex(32))  # Ray's own format: 256 bits, hex
        try:  # never replaced: two sweeps starting at once share the first token made
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    _chosen.clear()
    _chosen.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(path))
    os.environ.update(_chosen)
    # Ray reads both into its config when it is imported: refreshed as Ray does when it
    # turns token mode on itself (ray/_private/authentication/authentication_token_setup.py)
    from ray._raylet import AuthenticationTokenLoader, Config
    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()
    return path
