"""Drive a real headless Chromium from the tests, over the DevTools protocol.

Why the DevTools protocol (with the small `websocket-client` package) and not Selenium: it needs
no second program whose version must match the browser's (chromedriver), and it gives directly
what the tests check: console messages and uncaught exceptions as events, real key events
(Input.dispatchKeyEvent) and screenshots (Page.captureScreenshot). Debian's `chromium` is the
browser; CI installs it (Makefile target `chromium`).
"""
import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request

INSTALL = ("Chromium is needed for the stepper's browser tests and was not found. Install it: "
           "'apt-get install chromium' (Debian; `make test` does this when run as root), "
           "'apt-get install chromium-browser' (Ubuntu), or point $CHROMIUM at a Chromium or "
           "Chrome binary. Also 'pip install websocket-client' (in the test extra).")

KEYS = {'ArrowLeft': 37, 'ArrowRight': 39, 'Home': 36, 'End': 35}


def find_chromium():
    """The browser binary, or None: $CHROMIUM, else Debian's and Ubuntu's names."""
    for name in (os.environ.get('CHROMIUM'), 'chromium', 'chromium-browser', 'google-chrome'):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


class Browser:
    """One headless Chromium with one page; `events` collects what the page reported."""

    def __init__(self, width=1400, height=900, timeout=60):
        import websocket                    # imported here so the reason for a failure is clear
        executable = find_chromium()
        if executable is None:
            raise RuntimeError(INSTALL)
        self.profile = tempfile.mkdtemp(prefix='micrograd-chromium-')
        self.process = subprocess.Popen(
            [executable, '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
             '--no-default-browser-check', '--hide-scrollbars', '--remote-debugging-port=0',
             f'--user-data-dir={self.profile}', f'--window-size={width},{height}',
             'about:blank'], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.timeout, self.events, self._next_id = timeout, [], 0
        try:
            port = self._wait_for_port()
            with urllib.request.urlopen(f'http://127.0.0.1:{port}/json/list') as reply:
                page = next(t for t in json.load(reply) if t['type'] == 'page')
            # Chromium refuses DevTools connections that send an Origin header it did not allow
            self.socket = websocket.create_connection(page['webSocketDebuggerUrl'],
                                                      timeout=timeout, suppress_origin=True)
            for domain in ('Page', 'Runtime', 'Log'):
                self.call(f'{domain}.enable')
        except BaseException:
            self.close()
            raise

    def _wait_for_port(self):
        """Chromium writes the port it chose into DevToolsActivePort in its profile."""
        path, deadline = os.path.join(self.profile, 'DevToolsActivePort'), \
            time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f'Chromium exited at start (code {self.process.returncode})')
            if os.path.exists(path):
                with open(path) as file:
                    first = file.readline().strip()
                if first:
                    return int(first)
            time.sleep(0.05)
        raise TimeoutError('Chromium did not open its DevTools port')

    # ---- the protocol: a request, then messages until its answer; events are kept ----------
    def call(self, method, **params):
        self._next_id += 1
        self.socket.send(json.dumps({'id': self._next_id, 'method': method, 'params': params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get('id') == self._next_id:
                if 'error' in message:
                    raise RuntimeError(f'{method}: {message["error"]}')
                return message.get('result', {})
            self.events.append(message)

    def wait_for_event(self, method):
        for event in self.events:
            if event.get('method') == method:
                return event
        while True:
            message = json.loads(self.socket.recv())
            self.events.append(message)
            if message.get('method') == method:
                return message

    # ---- what a test does ------------------------------------------------------------------
    def open(self, path):
        self.events.clear()
        self.call('Page.navigate', url='file://' + os.path.abspath(path))
        self.wait_for_event('Page.loadEventFired')

    def errors(self):
        """Console errors, uncaught exceptions and failed loads the page reported so far."""
        found = []
        for event in self.events:
            method, params = event.get('method'), event.get('params', {})
            if method == 'Runtime.exceptionThrown':
                found.append(params['exceptionDetails'].get('exception', {})
                             .get('description') or params['exceptionDetails'].get('text'))
            elif method == 'Runtime.consoleAPICalled' and params.get('type') in ('error',
                                                                                  'assert'):
                found.append(' '.join(str(a.get('value', a.get('description')))
                                      for a in params.get('args', [])))
            elif method == 'Log.entryAdded' and params['entry'].get('level') == 'error':
                found.append(params['entry'].get('text'))
        return found

    def evaluate(self, expression):
        result = self.call('Runtime.evaluate', expression=expression, returnByValue=True)
        if 'exceptionDetails' in result:
            raise RuntimeError(f'{expression}: {result["exceptionDetails"]}')
        return result['result'].get('value')

    def press(self, key, times=1):
        """A real key press (keydown and keyup), as from the keyboard."""
        for _ in range(times):
            for kind in ('keyDown', 'keyUp'):
                self.call('Input.dispatchKeyEvent', type=kind, key=key, code=key,
                          windowsVirtualKeyCode=KEYS[key], nativeVirtualKeyCode=KEYS[key])

    def screenshot(self, path):
        data = self.call('Page.captureScreenshot', format='png')['data']
        with open(path, 'wb') as file:
            file.write(base64.b64decode(data))
        return path

    def close(self):
        socket = getattr(self, 'socket', None)
        if socket is not None:
            try:
                self.call('Browser.close')
            except Exception:
                pass                        # it may already be gone; the process is ended below
            socket.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.profile, ignore_errors=True)
