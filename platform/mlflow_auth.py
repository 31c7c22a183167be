"""Credentials for a cluster's MLflow server: python -m platform.mlflow_auth DIR

Run by cluster.yaml's head set-up. MLflow's basic-auth app (`mlflow server --app-name
basic-auth`) needs an admin password, a secret key for its CSRF protection and a user
database; this writes, once (a second run keeps what is there, so a re-run `ray up` does
not lock out running trials), into DIR, each file readable by its owner only:

- `basic_auth.ini`: the auth app's configuration (MLFLOW_AUTH_CONFIG_PATH), with the user
  database beside it and no permission for users other than the admin;
- `server.env`: what the server's systemd unit reads (EnvironmentFile=): the config path
  and the secret key;
- `client.env`: what the driver and every Ray worker export so their MLflow clients log in
  (MLFLOW_TRACKING_USERNAME, MLFLOW_TRACKING_PASSWORD); workers read it over NFS.

Nothing secret is in cluster.yaml or in git: the password is made on the head.
"""
import argparse
import os
import secrets
import sys
from pathlib import Path

USERNAME = "platform"
FILES = ("basic_auth.ini", "server.env", "client.env")


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


def write(directory: str | os.PathLike) -> bool:
    """The three files in `directory`; False (nothing changed) if they are there already."""
    folder = Path(directory).resolve()
    if all((folder / name).is_file() for name in FILES):
        return False
    folder.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(24)
    config = folder / "basic_auth.ini"
    _write_private(config, "\n".join([
        "[mlflow]",
        "default_permission = NO_PERMISSIONS",
        f"database_uri = sqlite:///{folder / 'basic_auth.db'}",
        f"admin_username = {USERNAME}",
        f"admin_password = {password}",
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth",
        # each request checks the password hash (tens of ms) unless cached: trials log often
        "auth_cache_ttl_seconds = 300",
        ""]))
    _write_private(folder / "server.env", f"MLFLOW_AUTH_CONFIG_PATH={config}\n"
                                          f"MLFLOW_FLASK_SERVER_SECRET_KEY={secrets.token_hex(32)}\n")
    _write_private(folder / "client.env", f"MLFLOW_TRACKING_USERNAME={USERNAME}\n"
                                          f"MLFLOW_TRACKING_PASSWORD={password}\n")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m platform.mlflow_auth", description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", help="where the files go (cluster.yaml: /srv/shared/mlflow/auth)")
    args = parser.parse_args(argv)
    made = write(args.directory)
    print(f"MLflow credentials {'written to' if made else 'kept in'} {Path(args.directory).resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
