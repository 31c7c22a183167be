"""The blind listening test: python -m platform.listen --serve EXPERIMENT

Clips: real segments of the sweep's dataset and samples of each trial's best checkpoint,
each voiced by the trials' `evaluation.vocoder`, under random names, so a rater hears
neither where a clip comes from nor which came before it (each rater gets their own
shuffle). The page plays one clip at a time and asks for a 1-5 score and "sounds like
techno?"; a rater id kept in the browser's localStorage lets a rater stop and come back.

Everything lives under STORAGE_ROOT/listening/<sweep parent run id>/ (or a key of the runs
given): clips/*.wav, clips.json (which clip is which) and ratings.sqlite (clip, run id,
rater, score, techno, time), so a restart serves the same clips and keeps every rating.
After each rating the rated trial's MLflow run gets `mos`, `mos/ci95_low`,
`mos/ci95_high` (Student's t interval), `mos/count` and `techno/share`; the parent run
gets `mos/real` (the anchor: what real mels through the same vocoder score) and the table
listening/mos.csv, one row per trial and one for the real clips.
"""
import csv
import hashlib
import io
import ipaddress
import json
import logging
import math
import re
import secrets
import socket
import sqlite3
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import numpy as np

log = logging.getLogger(__name__)

REAL = "real"  # the run id of the real clips in clips.json and the ratings
CLIP_ID = re.compile(r"[0-9a-f]{12}")
RATER_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")
MOS_TABLE = "listening/mos.csv"


class RequestError(Exception):
    """A bad request to the page's endpoints: (status, one sentence)."""

    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status = status


# ---------- the clips ----------

def folder_for(storage_root: str | Path, parent_run_id: str | None, run_ids: list[str]) -> Path:
    """A path made of MLflow's hex ids only: nothing a user types becomes a path."""
    key = parent_run_id or "runs-" + hashlib.sha256(",".join(sorted(run_ids)).encode()).hexdigest()[:16]
    assert re.fullmatch(r"[0-9a-zA-Z-]+", key), key
    return Path(storage_root) / "listening" / key


def prepare_clips(client, runs: list, dataset_path: str | None, folder: Path, per_trial: int, reals: int,
                  seed: int = 0) -> list[dict]:
    """Render the clips once into `folder`; a second call finds clips.json and reuses them."""
    manifest = folder / "clips.json"
    if manifest.exists():
        return json.loads(manifest.read_text())
    import soundfile
    import torch
    from platform.generate import load_checkpoint
    from trainables.checkpoint import CheckpointError, generator_from
    from data.dataset import read_rows, read_spec, spec_of
    from trainables.artifacts import generate
    from trainables.vocoder import render
    import shutil
    shutil.rmtree(folder / "clips", ignore_errors=True)  # WAVs of a render that stopped: no clips.json names them
    (folder / "clips").mkdir(parents=True, exist_ok=True)
    clips, vocoders = [], []

    def write(audio: np.ndarray, rate: int, run_id: str, source: str) -> None:
        clip = secrets.token_hex(6)
        soundfile.write(folder / "clips" / f"{clip}.wav", audio, rate, subtype="PCM_16")
        clips.append({"clip": clip, "run_id": run_id, "source": source})

    for number, run in enumerate(runs, 1):
        # voicing takes seconds a clip (HiFi-GAN on a CPU): a line per trial, so the wait is not silent
        print(f"voicing trial {number}/{len(runs)} ({run.info.run_name}): {per_trial} clip(s)", flush=True)
        try:
            state = load_checkpoint(client, run, "best")
            generator, cfg = generator_from(state, f"run {run.info.run_id}'s best checkpoint")
        except (LookupError, CheckpointError) as error:  # a run without one, a tampered or mismatched one
            log.warning("%s: left out of the listening test", error)
            continue
        z = torch.randn(per_trial, cfg.model.latent_dim, generator=torch.Generator().manual_seed(seed))
        spec = spec_of(state.dataset, f"run {run.info.run_id}'s best checkpoint")
        vocoders.append(cfg.evaluation.vocoder)
        for i, image in enumerate(generate(generator, z)):
            write(render(image, spec, cfg.evaluation.vocoder, cfg.evaluation.griffin_lim_iters * 2),
                  spec.mel.sample_rate, run.info.run_id, f"{run.info.run_name} seed {seed} #{i}")
    if dataset_path and reals:
        from data.dataset import read_segments
        spec = read_spec(dataset_path)
        count = read_segments(dataset_path, columns=["track_id", "segment_index"]).num_rows
        rows = sorted(np.random.default_rng(seed).choice(count, size=min(reals, count), replace=False).tolist())
        vocoder = max(set(vocoders), key=vocoders.count) if vocoders else "griffin-lim"
        print(f"voicing {len(rows)} real segment(s) with {vocoder}", flush=True)
        for image, name in zip(*read_rows(dataset_path, rows)):
            write(render(image, spec, vocoder, 64), spec.mel.sample_rate, REAL, f"{name} ({vocoder})")
    if not clips:
        raise LookupError("no clips to rate: the runs have no best checkpoint and no dataset was found.")
    manifest.write_text(json.dumps(clips, indent=1))
    return clips


# ---------- the ratings ----------

class Ratings:
    """ratings.sqlite: one row per (clip, rater); a rater who rates a clip again replaces it."""

    def __init__(self, path: Path):
        self.path = path
        with self._db() as db:
            db.execute("CREATE TABLE IF NOT EXISTS ratings (clip TEXT NOT NULL, run_id TEXT NOT NULL, "
                       "rater TEXT NOT NULL, score INTEGER NOT NULL, techno INTEGER NOT NULL, time REAL NOT NULL, "
                       "PRIMARY KEY (clip, rater))")

    def _db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=30)

    def add(self, clip: str, run_id: str, rater: str, score: int, techno: bool) -> None:
        with self._db() as db:
            db.execute("INSERT OR REPLACE INTO ratings VALUES (?, ?, ?, ?, ?, ?)",
                       (clip, run_id, rater, score, int(techno), time.time()))

    def rated_by(self, rater: str) -> set[str]:
        with self._db() as db:
            return {row[0] for row in db.execute("SELECT clip FROM ratings WHERE rater = ?", (rater,))}

    def of_run(self, run_id: str) -> list[tuple[int, int]]:
        with self._db() as db:
            return list(db.execute("SELECT score, techno FROM ratings WHERE run_id = ?", (run_id,)))

    def run_ids(self) -> list[str]:
        with self._db() as db:
            return [row[0] for row in db.execute("SELECT DISTINCT run_id FROM ratings ORDER BY run_id")]


def summary(rows: list[tuple[int, int]]) -> dict:
    """Mean opinion score with a 95 % Student's t interval (none below two ratings)."""
    scores = np.array([score for score, _ in rows], dtype=float)
    out = {"mos": float(scores.mean()), "mos/count": float(len(scores)),
           "techno/share": float(np.mean([techno for _, techno in rows]))}
    if len(scores) >= 2:
        from scipy import stats
        half = stats.t.ppf(0.975, len(scores) - 1) * scores.std(ddof=1) / math.sqrt(len(scores))
        out["mos/ci95_low"], out["mos/ci95_high"] = out["mos"] - half, out["mos"] + half
    return out


def log_scores(client, parent_run_id: str | None, ratings: Ratings, run_id: str, labels: dict[str, str]) -> None:
    """The rated run's MOS to its MLflow run (real clips': to the parent, as mos/real), and
    the table of all of them to the parent run."""
    rows = ratings.of_run(run_id)
    metrics = summary(rows)
    step = len(rows)
    if run_id != REAL:
        for key, value in metrics.items():
            client.log_metric(run_id, key, value, step=step)
    elif parent_run_id:
        for key, value in metrics.items():
            # mos -> mos/real, mos/count -> mos/real/count, techno/share -> techno/share/real
            name = key.replace("mos", "mos/real", 1) if key.startswith("mos") else f"{key}/real"
            client.log_metric(parent_run_id, name, value, step=step)
    if parent_run_id:
        table = io.StringIO()
        columns = ["run_id", "trial", "mos", "mos/ci95_low", "mos/ci95_high", "mos/count", "techno/share"]
        writer = csv.DictWriter(table, fieldnames=columns, restval="")
        writer.writeheader()
        for rated in ratings.run_ids():
            writer.writerow({"run_id": rated, "trial": labels.get(rated, rated), **summary(ratings.of_run(rated))})
        client.log_text(parent_run_id, table.getvalue(), MOS_TABLE)


# ---------- the page ----------

class ListeningTest:
    """What the handler serves: the clips, the store, and MLflow."""

    def __init__(self, folder: Path, clips: list[dict], client, parent_run_id: str | None, labels: dict[str, str]):
        self.folder, self.clips = folder, {c["clip"]: c for c in clips}
        self.order = sorted(self.clips)
        self.ratings = Ratings(folder / "ratings.sqlite")
        self.client, self.parent_run_id, self.labels = client, parent_run_id, labels
        self.lock = threading.Lock()  # one rating (and its MLflow update) at a time

    def rater(self, value) -> str:
        if not isinstance(value, str) or not RATER_ID.fullmatch(value):
            raise RequestError(HTTPStatus.BAD_REQUEST, "rater must be 8 to 64 letters, digits, - or _.")
        return value

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


def handler_for(test: ListeningTest, host: str = "127.0.0.1", idle_timeout: float = 30.0):
    names = host_names(host)

    class Handler(BaseHTTPRequestHandler):
        timeout = idle_timeout  # a connection that sends nothing is closed, its thread ends

        def log_message(self, format, *args):  # quiet: one line per request at debug level only
            log.debug("%s " + format, self.address_string(), *args)

        def log_error(self, format, *args):  # a malformed request or a timeout: one line
            log.warning("%s: " + format, self.address_string(), *args)

        def _refused(self) -> RequestError | None:
            """A request from another site, or to a name that is not this server's."""
            port = self.server.server_address[1]
            if not allowed_host(self.headers.get("Host"), names, port):
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
                return self._answer(lambda: test.next(test.rater(parse_qs(url.query).get("rater", [None])[0])))
            if url.path.startswith("/clips/") and url.path.endswith(".wav"):
                try:
                    clip = test.clip(url.path[len("/clips/"):-len(".wav")])
                except RequestError as error:
                    return self._fail(error)
                return self._send(HTTPStatus.OK, (test.folder / "clips" / f"{clip['clip']}.wav").read_bytes(),
                                  "audio/wav")
            self._fail(RequestError(HTTPStatus.NOT_FOUND, f"there is nothing at {url.path[:100]}."))

        def do_POST(self):
            refused = self._refused()
            if refused:
                self.close_connection = True  # its body is left unread
                return self._fail(refused)
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
                return test.rate(body)
            self._answer(rate)

    return Handler


class _Server(ThreadingHTTPServer):
    request_queue_size = 1024  # the default 5 reset 9 of 1,000 ratings sent at once
    daemon_threads = True

    def handle_error(self, request, client_address):  # a dropped connection: one line, no traceback
        import sys
        log.warning("%s: the connection failed (%s)", client_address[0], sys.exc_info()[1])


def serve(test: ListeningTest, host: str, port: int, idle_timeout: float = 30.0) -> ThreadingHTTPServer:
    """The page on `host`:`port`; a connection idle for `idle_timeout` seconds is closed."""
    server_class = type("Server", (_Server,), {"address_family": socket.AF_INET6}) if ":" in host else _Server
    return server_class((host, port), handler_for(test, host, idle_timeout))


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Listening test</title>
<style>
 body { font-family: sans-serif; max-width: 36em; margin: 3em auto; line-height: 1.5; }
 fieldset { border: 1px solid #ccc; margin: 1em 0; } label { margin-right: 1em; }
 #error { color: #b00; } button { font-size: 1.1em; padding: 0.3em 1.5em; }
</style></head>
<body>
<h1>Listening test</h1>
<p>Each clip is 5 seconds of machine-made or real music, in random order. Listen, then rate it.
You can stop at any time and come back later in this browser.</p>
<p id="progress">loading</p>
<div id="rating">
<audio id="player" controls preload="auto"></audio>
<fieldset><legend>How good does it sound? (1 bad, 5 excellent)</legend>
 <label><input type="radio" name="score" value="1"> 1</label><label><input type="radio" name="score" value="2"> 2</label>
 <label><input type="radio" name="score" value="3"> 3</label><label><input type="radio" name="score" value="4"> 4</label>
 <label><input type="radio" name="score" value="5"> 5</label></fieldset>
<fieldset><legend>Does it sound like techno?</legend>
 <label><input type="radio" name="techno" value="yes"> yes</label><label><input type="radio" name="techno" value="no"> no</label>
</fieldset>
<button id="submit" disabled>Next</button>
</div>
<p id="done" hidden>All clips are rated: thank you.</p>
<p id="error"></p>
<script>
const rater = localStorage.getItem("rater") || (() => {
  const id = Array.from(crypto.getRandomValues(new Uint8Array(12)), b => b.toString(16).padStart(2, "0")).join("");
  localStorage.setItem("rater", id); return id; })();
let clip = null;
const $ = id => document.getElementById(id);
const chosen = name => document.querySelector(`input[name=${name}]:checked`);
function show(state) {
  $("progress").textContent = `${state.rated} of ${state.total} rated`;
  clip = state.clip;
  document.querySelectorAll("input[type=radio]").forEach(r => r.checked = false);
  $("submit").disabled = true;
  if (clip === null) { $("rating").hidden = true; $("done").hidden = false; return; }
  $("player").src = `/clips/${clip}.wav`;
}
async function call(url, options) {
  const response = await fetch(url, options);
  const body = await response.json();
  if (!response.ok) { $("error").textContent = body.error; throw new Error(body.error); }
  $("error").textContent = ""; return body;
}
document.querySelectorAll("input[type=radio]").forEach(r => r.addEventListener("change",
  () => $("submit").disabled = !(chosen("score") && chosen("techno"))));
$("submit").addEventListener("click", async () => {
  $("submit").disabled = true;
  show(await call("/api/rate", {method: "POST", headers: {"Content-Type": "application/json"},
    body: JSON.stringify({rater, clip, score: Number(chosen("score").value), techno: chosen("techno").value === "yes"})}));
});
call(`/api/next?rater=${rater}`).then(show);
</script>
</body></html>
"""


def main(args) -> int:
    """`platform.listen --serve`: find the runs, render the clips once, serve until Ctrl-C."""
    from platform.driver import command, tracking
    from platform.spec.spaces import StorageSpec
    if args.clips_per_trial < 1 or args.real_clips < 0:
        return command.error("--clips-per-trial must be at least 1 and --real-clips at least 0.")
    try:
        _, client = command.tracking_client(args.tracking_uri)
        experiment = tracking.get_experiment(client, args.serve)
        if args.runs:
            parent, runs = None, [tracking.get_run(client, run_id) for run_id in args.runs]
            parents = {r.data.tags.get("mlflow.parentRunId") for r in runs}
            if len(parents) == 1 and None not in parents:
                parent = tracking.get_run(client, parents.pop())
        else:
            parent = (tracking.get_run(client, args.parent) if args.parent
                      else tracking.latest_parent_run(client, args.serve))
            runs = tracking.trial_runs(client, experiment.experiment_id, parent.info.run_id)
        if not runs:
            raise tracking.RunLookupError(f"sweep run {parent.info.run_id} ({parent.info.run_name}) has no trial runs.")
        foreign = [r.info.run_id for r in runs + ([parent] if parent else [])
                   if r.info.experiment_id != experiment.experiment_id]
        if foreign:
            raise tracking.RunLookupError(f"run {foreign[0]} is not in experiment {args.serve!r}.")
        root = args.storage_root or StorageSpec().resolved_root()
        folder = folder_for(root, parent.info.run_id if parent else None, [r.info.run_id for r in runs])
        dataset = parent.data.tags.get("dataset.path") if parent else None
        if dataset and not Path(dataset).is_dir():
            log.warning("the sweep's dataset %s is not here: no real clips, so no anchor", dataset)
            dataset = None
        print(f"Clips and ratings in {folder}")
        clips = prepare_clips(client, runs, dataset, folder, args.clips_per_trial, args.real_clips)
    except LookupError as error:
        return command.error(error)
    labels = {r.info.run_id: r.info.run_name for r in runs} | {REAL: "real segments (anchor)"}
    test = ListeningTest(folder, clips, client, parent.info.run_id if parent else None, labels)
    try:
        server = serve(test, args.host, args.port)
    except OSError as error:
        return command.error(f"--host {args.host} --port {args.port}: cannot listen there ({error.strerror}).")
    host, port = server.server_address[:2]
    if not is_loopback(args.host):
        log.warning("--host %s: the listening test is open to every machine that can reach this one on port %d, "
                    "with no login; use the default 127.0.0.1 (and an SSH tunnel) unless the network is yours.",
                    args.host, port)
        host = socket.getfqdn() if host in ("0.0.0.0", "::") else host  # 0.0.0.0 is no address to open
    shown = f"[{host}]" if ":" in host else host
    print(f"Listening test of {len(clips)} clips ({len(runs)} trials): open http://{shown}:{port}/ (Ctrl-C stops)",
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
