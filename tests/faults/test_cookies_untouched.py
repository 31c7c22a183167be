"""Issue 30, item 6: the user's files are never written. yt-dlp saves its cookie jar back to
the file it was given when it closes; four downloads at once (dataset.download.concurrency 4)
from a local site that sets cookies of its own leave the user's cookies file unchanged, byte
for byte, and every request carried the user's cookie."""
import http.server
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor

import pytest

from data import download, synthetic
from data.spec import DownloadParams
from tests.helpers import recording_site

COOKIE = "SESSION=the-users-own-cookie"


class _Site(http.server.SimpleHTTPRequestHandler):
    """Serves a folder, sets a cookie on every answer (a jar saved back would change), and notes
    each request's Cookie header."""
    seen: list

    def end_headers(self):
        self.send_header("Set-Cookie", "served=1; Path=/; Max-Age=3600")
        super().end_headers()

    def log_message(self, *args):
        self.seen.append(self.headers.get("Cookie") or "")


@pytest.fixture
def site(tmp_path):
    with recording_site(tmp_path, _Site) as served:
        yield served


def test_four_downloads_at_once_leave_the_cookies_file_as_it_was(tmp_path, site, monkeypatch):
    root, base, seen = site
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # where the private copies go
    for n in range(4):
        synthetic.write_track(root / f"t{n}.wav", seed=n, seconds=6.0, sample_rate=8000)
    cookies = tmp_path / "my-youtube-cookies.txt"
    name, value = COOKIE.split("=")
    cookies.write_text("# Netscape HTTP Cookie File\n# exported by my browser, my own comments\n\n"
                       f"127.0.0.1\tFALSE\t/\tFALSE\t2147483647\t{name}\t{value}\n")
    cookies.chmod(0o600)
    before, stat = cookies.read_bytes(), cookies.stat()
    params = DownloadParams(cookies=str(cookies), concurrency=4, per_host_concurrency=4,
                            sleep_seconds=0, max_sleep_seconds=0)
    urls = [f"{base}/t{n}.wav" for n in range(4)]
    with ThreadPoolExecutor(params.concurrency) as pool:
        got = list(pool.map(lambda url: download.download(url, download.video_key(url), tmp_path / "cache", params),
                            urls))
    assert len({path for path, _ in got}) == 4 and all(path.stat().st_size > 0 for path, _ in got)
    assert cookies.read_bytes() == before, "the user's cookies file was rewritten"
    assert cookies.stat().st_mtime_ns == stat.st_mtime_ns and cookies.stat().st_ino == stat.st_ino
    assert seen and all(COOKIE in header for header in seen), seen  # the copies carried the cookie
    assert os.listdir(tmp_path / "tmp") == [], "the private copies are removed"
