"""YouTube as far as it can be checked offline: yt-dlp finds the project's Deno and EJS
solver; a playlist served from 127.0.0.1 through yt-dlp's generic extractor, with one
broken entry whose cause lands in the failures table; the cookies file reaches yt-dlp and
no log, manifest, spec artifact, dry run or MLflow param; yt-dlp's reasons sorted into
causes with their fix; the per-site fetch cap."""
import http.server
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from data import download, pipeline, synthetic
from data.dataset import read_failures, read_manifest
from data.spec import DatasetSpec, DownloadParams
from platform.spec import spaces
from platform import sweep
from tests.helpers import recording_site, write_spec

COOKIE = "SESSION=a-secret-cookie-value"


@pytest.mark.slow
def test_yt_dlp_finds_the_projects_deno_and_solver(tmp_path):
    found = download.runtime_report()
    assert found["js_runtime"] and found["js_runtime"].startswith("deno ")
    assert found["solver"] and found["solver"].startswith("yt-dlp-ejs ")
    deno = download.deno_path()
    assert deno and Path(deno).is_file()
    # the runtime yt-dlp was given runs JavaScript (no network: plain eval)
    ran = subprocess.run([deno, "eval", "console.log(6 * 7)"], capture_output=True, text=True, timeout=600,
                         env={"DENO_DIR": str(tmp_path / "deno"), "HOME": str(tmp_path), "NO_COLOR": "1"})
    assert ran.stdout.strip() == "42", ran.stderr
    # the CLI through the project's set-up, with a PATH that lacks .venv/bin
    cli = subprocess.run([sys.executable, "-m", "yt_dlp", "-v", "--ignore-config", "--simulate", "about:blank"],
                         capture_output=True, text=True, timeout=600, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    line = next(x for x in cli.stderr.splitlines() if "JS runtimes:" in x)
    assert "deno-" in line and "yt_dlp_ejs-" in cli.stderr, cli.stderr[-2000:]


def test_causes_and_their_one_line_summary():
    said = {  # as yt-dlp words them (yt_dlp/extractor/youtube/_video.py, common.py)
        "sign_in": "ERROR: [youtube] abc: Sign in to confirm you’re not a bot. Use --cookies-from-browser or "
                   "--cookies for the authentication.",
        "geo_blocked": "ERROR: [youtube] abc: The uploader has not made this video available in your country",
        "unavailable": "ERROR: [youtube] abc: Private video. Sign in if you've been granted access to this video",
        "rate_limited": "ERROR: [youtube] abc: This content isn't available, try again later. The current session "
                        "has been rate-limited by YouTube for up to an hour.",
        "no_js_runtime": "WARNING: [youtube] No supported JavaScript runtime could be found.",
    }
    for name, text in said.items():
        assert download.cause_of(text).name == name, text
    # the real reason comes from an earlier warning when the error itself says little
    error = download._explain(Exception("ERROR: [youtube] abc: Requested format is not available"),
                              "https://www.youtube.com/watch?v=abc", [said["no_js_runtime"]])
    assert str(error).startswith("yt-dlp could not solve YouTube's JavaScript challenge: [youtube] abc: Requested format")
    assert "No supported JavaScript runtime" in str(error)
    failures = [{"reason": str(download._explain(Exception(said["sign_in"]), "https://youtu.be/x"))}] * 37
    failures += [{"reason": "the file is empty (0 bytes)"}]
    assert download.summary(failures) == [
        "YouTube asked to sign in for 37 videos: set dataset.download.cookies to a cookies.txt exported from a "
        "browser signed in to YouTube."]


def test_fetches_are_capped_per_site():
    assert pipeline._site("https://www.youtube.com/watch?v=a") == pipeline._site("https://youtu.be/a") == "youtube.com"
    assert pipeline._fetch_slots({"youtube.com": 300, "soundcloud.com": 5}, concurrency=4, per_host=2) == \
        {"youtube.com": 2, "soundcloud.com": 2}
    assert pipeline._fetch_slots({"youtube.com": 300, "a.org": 1, "b.org": 1}, concurrency=2, per_host=2) == \
        {"youtube.com": 2, "a.org": 1, "b.org": 1}  # each site gets one at least
    with pytest.raises(ValueError, match="per_host_concurrency"):
        DownloadParams(per_host_concurrency=0)
    with pytest.raises(ValueError, match="sleep_seconds"):
        DownloadParams(sleep_seconds=5, max_sleep_seconds=1)


def _cookies(tmp_path: Path) -> Path:
    path = tmp_path / "private" / "my-youtube-cookies.txt"
    path.parent.mkdir()
    path.write_text("# Netscape HTTP Cookie File\n127.0.0.1\tFALSE\t/\tFALSE\t0\t" + COOKIE.replace("=", "\t") + "\n")
    return path


def test_the_cookies_path_is_in_no_spec_written_down(tmp_path, capsys):
    cookies = _cookies(tmp_path)
    with pytest.raises(ValueError, match="cookies: no file at"):
        DownloadParams(cookies=str(tmp_path / "missing.txt"))
    assert str(cookies) not in repr(DownloadParams(cookies=str(cookies)))
    space = write_spec(tmp_path / "space.yaml", name="yt", dataset={"download": {"cookies": str(cookies)}})
    assert spaces.load(space).dataset.download.cookies == str(cookies)  # it reaches the spec ...
    (tmp_path / "out").mkdir()
    artifact = Path(spaces.read(space).file_as_run(tmp_path / "out"))
    assert artifact != space and str(cookies) not in artifact.read_text() and "<redacted>" in artifact.read_text()
    pair = [f"dataset.download.cookies={cookies}"]
    given = spaces.read(write_spec(tmp_path / "plain.yaml", name="yt"), pair)
    assert str(cookies) not in Path(given.file_as_run(tmp_path / "out")).read_text()
    assert given.params() == {"set/dataset.download.cookies": "<redacted>"}
    assert sweep.main([str(space), "--dry-run", "--set", f"dataset.download.cookies={cookies}"]) == 0
    printed = capsys.readouterr().out
    assert str(cookies) not in printed and "cookies: <redacted>" in printed


class _Site(http.server.SimpleHTTPRequestHandler):
    """Serves a folder and notes each request's path and Cookie header."""
    seen: list

    def log_message(self, *args):
        self.seen.append((self.path, self.headers.get("Cookie")))


@pytest.fixture
def site(tmp_path):
    with recording_site(tmp_path, _Site) as served:
        yield served


@pytest.mark.slow
def test_a_served_playlist_builds_with_its_broken_entry_explained(tmp_path, site, ray_local, caplog):
    root, base, seen = site
    synthetic.write_track(root / "one.wav", seed=1, seconds=11.0, sample_rate=22050)
    synthetic.write_track(root / "two.wav", seed=2, seconds=11.0, sample_rate=22050)
    items = "".join(f'<item><title>{n}</title><link>{base}/{n}.wav</link>'
                    f'<enclosure url="{base}/{n}.wav" type="audio/wav"/></item>' for n in ("one", "gone", "two"))
    (root / "feed.xml").write_text(f'<?xml version="1.0"?><rss version="2.0"><channel><title>techno</title>'
                                   f'<link>{base}/</link>{items}</channel></rss>')
    cookies = _cookies(tmp_path)
    spec = DatasetSpec(urls=[f"{base}/feed.xml"],
                       download=DownloadParams(cookies=str(cookies), sleep_seconds=0, max_sleep_seconds=0))
    caplog.set_level(logging.DEBUG)
    built = pipeline.build(spec, tmp_path / "runs")
    assert built.segments == 4 and built.tracks == 2  # 2 segments of 5 s from each whole track
    [failure] = read_failures(built.path)
    assert failure["input"] == f"{base}/gone.wav" and failure["stage"] == "fetch"
    assert failure["reason"].startswith("private, removed or not found: ") and "HTTP Error 404" in failure["reason"]
    assert download.summary([failure]) == [
        "private, removed or not found for 1 video: remove the video from the playlist or URL file, "
        "or leave it: the build goes on without it."]
    # the cookies reached yt-dlp (the listing is this process's; the downloads, Ray workers')
    assert {path for path, cookie in seen if cookie == COOKIE} >= {"/feed.xml", "/one.wav", "/two.wav"}
    manifest = (built.path / "manifest.json").read_text()
    assert read_manifest(built.path)["spec"]["download"]["cookies"] == "<redacted>"
    logged = "\n".join(record.getMessage() for record in caplog.records)
    for text in (manifest, logged):
        assert str(cookies) not in text and "a-secret-cookie-value" not in text
