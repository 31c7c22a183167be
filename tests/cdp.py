"""A headless Chromium driven over the DevTools protocol on a pipe (--remote-debugging-pipe):
commands go in on the browser's fd 3, answers and events come out of its fd 4, each a JSON
message ended by a NUL byte. Standard library only, so the test needs no browser driver."""
import json
import os
import subprocess
import time
from pathlib import Path

# Deadlines for a busy 2-core machine (load 10-20 while other tests and sweeps run): each
# waits for a condition and returns as soon as it holds, so a quiet machine is not slowed.
STARTUP_S, WAIT_S = 120, 180

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--autoplay-policy=no-user-gesture-required", "--mute-audio", "--window-size=1000,900"]


class Browser:
    def __init__(self, chromium: str, profile: Path):
        to_browser, self._in = os.pipe()   # we write commands into _in; the browser reads fd 3
        self._out, from_browser = os.pipe()  # the browser writes fd 4; we read _out

        def fds():  # in the child: the two ends where Chromium looks for them (3 and 4 are taken, so
            a, b = os.dup(to_browser), os.dup(from_browser)  # these copies are neither)
            os.dup2(a, 3), os.dup2(b, 4)

        self.process = subprocess.Popen([chromium, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-pipe",
                                         "about:blank"], preexec_fn=fds, pass_fds=(3, 4), stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        os.close(to_browser), os.close(from_browser)
        self._next, self._buffer, self.session = 0, b"", None
        self.events: list[dict] = []  # what the browser told unasked (Network.requestWillBeSent, ...)
        deadline = time.monotonic() + STARTUP_S
        while True:  # a busy machine: the first page may not be there yet
            pages = [t for t in self.send("Target.getTargets")["targetInfos"] if t["type"] == "page"]
            if pages or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert pages, f"Chromium opened no page in {STARTUP_S} s"
        page = pages[0]
        self.session = self.send("Target.attachToTarget", targetId=page["targetId"], flatten=True)["sessionId"]
        self.send("Page.enable"), self.send("Runtime.enable")

    def _message(self) -> dict:
        while b"\0" not in self._buffer:
            chunk = os.read(self._out, 1 << 16)
            if not chunk:
                raise RuntimeError("Chromium closed its DevTools pipe")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def send(self, method: str, **params) -> dict:
        self._next += 1
        message = {"id": self._next, "method": method, "params": params}
        if self.session and not method.startswith("Target."):
            message["sessionId"] = self.session
        os.write(self._in, json.dumps(message).encode() + b"\0")
        while True:
            answer = self._message()
            if "method" in answer:
                self.events.append(answer)
            if answer.get("id") == self._next:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer["result"]

    def evaluate(self, expression: str, gesture: bool = False):
        result = self.send("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True,
                           userGesture=gesture)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = WAIT_S):
        """Poll `expression` until it is truthy; returns its value."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = self.evaluate(expression)
            except RuntimeError:
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"{expression} stayed false for {timeout} s")
            time.sleep(0.2)

    def click(self, selector: str) -> None:
        """A real mouse click (press and release) at the middle of the element."""
        box = self.wait_for(f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
                            " if (!e || e.disabled) return null; const r = e.getBoundingClientRect();"
                            " return [r.x + r.width / 2, r.y + r.height / 2]; })()")
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)

    def navigate(self, url: str, timeout: float = WAIT_S) -> None:
        self.evaluate("window.__leaving = true")  # gone once the new document is there
        same_document = "loaderId" not in self.send("Page.navigate", url=url)  # a change of #fragment only
        self.wait_for(("true" if same_document else "!window.__leaving") + " && document.readyState === 'complete'",
                      timeout)

    def screenshot(self, path: Path) -> None:
        """The viewport as a PNG at `path`."""
        import base64
        Path(path).write_bytes(base64.b64decode(self.send("Page.captureScreenshot", format="png")["data"]))

    def close(self) -> None:
        try:
            self.send("Browser.close")
        except (RuntimeError, OSError):
            pass
        try:
            self.process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._in), os.close(self._out)
