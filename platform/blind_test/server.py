"""The listening test's web page (page.html) and its endpoints, /api/rater, /api/next and
/api/rate, on a plain HTTP server: bounded requests, answers to its own page only (the Host
and Origin checks), never inside another site's frame, one rating at a time, each rating
stored before MLflow hears of it.

Ratings count people, not requests: a rating names a rater token the page was issued
(/api/rater, once per browser, kept in its localStorage), a token rates each clip once (a
second rating replaces the first), and the test issues at most `max_raters` tokens."""
import hashlib
import ipaddress
import json
import logging
import re
import socket
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import numpy as np

from platform.blind_test.ratings import Ratings, log_scores

log = logging.getLogger(__name__)

CLIP_ID = re.compile(r"[0-9a-f]{12}")
RATER_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")
MAX_RATERS = 200  # rater tokens one test issues (--max-raters): a listening panel, not a crowd of scripts
# every answer: never shown inside another site's frame (clickjacking a rating)
NO_FRAMING = {"Content-Security-Policy": "frame-ancestors 'none'", "X-Frame-Options": "DENY"}
PAGE = (Path(__file__).parent / "page.html").read_text()


class RequestError(Exception):
    """A bad request to the page's endpoints: (status, one sentence)."""

    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status = status


class ListeningTest:
    """What the handler serves: the clips, the store, and MLflow."""

    def __init__(self, folder: Path, clips: list[dict], client, parent_run_id: str | None, labels: dict[str, str],
                 max_raters: int = MAX_RATERS):
        self.folder, self.clips, self.max_raters = folder, {c["clip"]: c for c in clips}, max_raters
        self.order = sorted(self.clips)
        self.ratings = Ratings(folder / "ratings.sqlite")
        self.client, self.parent_run_id, self.labels = client, parent_run_id, labels
        self.lock = threading.Lock()  # one rating (and its MLflow update) at a time

    def rater(self, value) -> str:
        if not isinstance(value, str) or not RATER_ID.fullmatch(value):
            raise RequestError(HTTPStatus.BAD_REQUEST, "rater must be 8 to 64 letters, digits, - or _.")
        if not self.ratings.issued(value):
            raise RequestError(HTTPStatus.FORBIDDEN, "this rater token was not issued by this test; reload the page.")
        return value

    def new_rater(self) -> dict:
        token = self.ratings.issue(self.max_raters)
        if token is None:
            raise RequestError(HTTPStatus.TOO_MANY_REQUESTS, f"this test has issued its {self.max_raters} rater "
                                                             "tokens; its host can serve it with more (--max-raters).")
        log.info("a rater token was issued (at most %d)", self.max_raters)
        return {"rater": token}

    def clip(self, value) -> dict:
        if not isinstance(value, str) or not CLIP_ID.fullmatch(value):
            raise RequestError(HTTPStatus.BAD_REQUEST, f"{value!r} is not a clip id (12 hex digits).")
        if value not in self.clips:
            raise RequestError(HTTPStatus.NOT_FOUND, f"there is no clip {value!r} in this test.")
        return self.clips[value]

    def next(self, rater: str) -> dict:
        """The rater's next unrated clip in their own shuffle (the same after a reload)."""
        done = self.ratings.rated_by(rater) & set(self.clips)
        shuffled = list(self.order)
        np.random.default_rng(int(hashlib.sha256(rater.encode()).hexdigest()[:12], 16)).shuffle(shuffled)
        left = [c for c in shuffled if c not in done]
        return {"rated": len(done), "total": len(self.clips), "clip": left[0] if left else None}

    def rate(self, body: dict) -> dict:
        rater, clip = self.rater(body.get("rater")), self.clip(body.get("clip"))
        score, techno = body.get("score"), body.get("techno")
        if not isinstance(score, int) or isinstance(score, bool) or not 1 <= score <= 5:
            raise RequestError(HTTPStatus.BAD_REQUEST, f"score must be a whole number from 1 to 5, got {score!r}.")
        if not isinstance(techno, bool):
            raise RequestError(HTTPStatus.BAD_REQUEST, f"techno must be true or false, got {techno!r}.")
        with self.lock:
            self.ratings.add(clip["clip"], clip["run_id"], rater, score, techno)
            try:
                log_scores(self.client, self.parent_run_id, self.ratings, clip["run_id"], self.labels)
            except Exception:  # the rating is stored; MLflow catches up with the next one
                log.warning("the scores of %s could not be logged to MLflow", clip["run_id"], exc_info=True)
        return self.next(rater)


LOOPBACK_NAMES = ("localhost", "localhost.localdomain")


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
        return True
    except ValueError:
        return False


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps the page on this machine."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_names(host: str) -> set[str]:
    """The names a request's Host may give besides an IP address: localhost, this machine's
    names, and --host (looked up once: getfqdn may ask a resolver)."""
    return {*LOOPBACK_NAMES, host.lower(), socket.gethostname().lower(), socket.getfqdn().lower()}


def allowed_host(header: str | None, names: set[str], port: int) -> bool:
    """Whether a request's Host header names this server. A page from another site that
    rebinds its own DNS name to 127.0.0.1 sends that name: it is refused, so the page cannot
    read /api/next. Accepted: an IP address, or one of `names` (host_names)."""
    if not header:
        return False
    if header.endswith("]") or ":" not in header:  # no port: the default one
        name, given_port = header, "80"
    else:
        name, _, given_port = header.rpartition(":")
    if not name or given_port != str(port):
        return False
    return _is_ip(name) or name.lower() in names


class Handler(BaseHTTPRequestHandler):
    """The page and its endpoints for one ListeningTest (handler_for binds it)."""
    test: ListeningTest
    names: set[str]  # the Host names this server answers to besides IP addresses (host_names)
    timeout = 30.0  # seconds: a connection that sends nothing is closed, its thread ends

    def log_message(self, format, *args):  # quiet: one line per request at debug level only
        log.debug("%s " + format, self.address_string(), *args)

    def log_error(self, format, *args):  # a malformed request or a timeout: one line
        log.warning("%s: " + format, self.address_string(), *args)

    def _refused(self) -> RequestError | None:
        """A request from another site, or to a name that is not this server's."""
        port = self.server.server_address[1]
        if not allowed_host(self.headers.get("Host"), self.names, port):
            return RequestError(HTTPStatus.FORBIDDEN, "the Host header does not name this server.")
        origin = self.headers.get("Origin")
        if origin is not None and origin != f"http://{self.headers['Host']}":
            return RequestError(HTTPStatus.FORBIDDEN, "requests from another site's page are not accepted.")
        return None

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for header, value in NO_FRAMING.items():
            self.send_header(header, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: HTTPStatus, payload: dict) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _fail(self, error: RequestError) -> None:
        log.warning("%s: %s %s: %d %s", self.address_string(), self.command, self.path[:100],
                    error.status, error)
        self._json(error.status, {"error": str(error)})

    def _answer(self, work) -> None:
        try:
            self._json(HTTPStatus.OK, work())
        except RequestError as error:
            self._fail(error)

    def do_GET(self):
        refused = self._refused()
        if refused:
            return self._fail(refused)
        url = urlparse(self.path)
        if url.path == "/":
            return self._send(HTTPStatus.OK, PAGE.encode(), "text/html; charset=utf-8")
        if url.path == "/api/next":
            return self._answer(lambda: self.test.next(self.test.rater(parse_qs(url.query).get("rater", [None])[0])))
        if url.path.startswith("/clips/") and url.path.endswith(".wav"):
            try:
                clip = self.test.clip(url.path[len("/clips/"):-len(".wav")])
            except RequestError as error:
                return self._fail(error)
            return self._send(HTTPStatus.OK, (self.test.folder / "clips" / f"{clip['clip']}.wav").read_bytes(),
                              "audio/wav")
        self._fail(RequestError(HTTPStatus.NOT_FOUND, f"there is nothing at {url.path[:100]}."))

    def do_POST(self):
        refused = self._refused()
        if refused:
            self.close_connection = True  # its body is left unread
            return self._fail(refused)
        if urlparse(self.path).path == "/api/rater":
            self.close_connection = True  # a body, if any, is left unread
            return self._answer(self.test.new_rater)
        if urlparse(self.path).path != "/api/rate":
            self.close_connection = True
            return self._fail(RequestError(HTTPStatus.NOT_FOUND,
                                           f"there is nothing to post to at {self.path[:100]}."))

        def rate():
            # JSON only: a form or text/plain post is what another site's page can send
            # without asking first (no CORS preflight)
            if self.headers.get_content_type() != "application/json":
                self.close_connection = True
                raise RequestError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "a rating is sent as application/json.")
            length = self.headers.get("Content-Length") or "0"
            if not length.isdigit() or not 0 < int(length) <= 4096:
                self.close_connection = True
                raise RequestError(HTTPStatus.BAD_REQUEST, "a rating is a JSON object of at most 4 kB "
                                                           "(Content-Length 1 to 4096).")
            try:
                body = json.loads(self.rfile.read(int(length)))
            except (ValueError, RecursionError):  # 4 kB of "[" nests 4,096 deep
                raise RequestError(HTTPStatus.BAD_REQUEST, "the body is not JSON (or nests too deep).") from None
            if not isinstance(body, dict):
                raise RequestError(HTTPStatus.BAD_REQUEST, "a rating is a JSON object.")
            return self.test.rate(body)
        self._answer(rate)


def handler_for(test: ListeningTest, host: str = "127.0.0.1", idle_timeout: float = 30.0) -> type[Handler]:
    """The Handler class serving `test`; a connection that sends nothing for `idle_timeout`
    seconds is closed and its thread ends."""
    return type("ListeningHandler", (Handler,), {"test": test, "names": host_names(host), "timeout": idle_timeout})


class Server(ThreadingHTTPServer):
    request_queue_size = 1024  # the default 5 reset 9 of 1,000 ratings sent at once
    daemon_threads = True

    def handle_error(self, request, client_address):  # a dropped connection: one line, no traceback
        import sys
        log.warning("%s: the connection failed (%s)", client_address[0], sys.exc_info()[1])


def serve(test: ListeningTest, host: str, port: int, idle_timeout: float = 30.0) -> ThreadingHTTPServer:
    """The page on `host`:`port`; a connection idle for `idle_timeout` seconds is closed."""
    server_class = type("Server", (Server,), {"address_family": socket.AF_INET6}) if ":" in host else Server
    return server_class((host, port), handler_for(test, host, idle_timeout))
