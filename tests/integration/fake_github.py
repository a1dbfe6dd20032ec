"""A fake GitHub releases API and asset host for the self-update tests, both
real HTTP servers on loopback:

- GET /repos/{owner}/{name}/releases?per_page=N&page=P on the API: the
  releases, newest first, PAGE_SIZE a page (whatever per_page asks: GitHub
  caps it too), with a Link rel="next" header, an ETag, and 304 for a
  matching If-None-Match; 403 with X-RateLimit-Remaining: 0 while
  rate_limited;
- GET /download/{tag}/{name} on the API: a 302 to the asset host, as
  GitHub's browser_download_url redirects to its storage;
- GET /{tag}/{name} on the asset host: the asset's bytes, or ("slow", bytes)
  one byte a second, or ("endless",) bytes for ever.

Every request is recorded with its headers, to check what went where."""
import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

PAGE_SIZE = 30


class FakeGitHub:
    def __init__(self, repository="acme/nodelua"):
        self.repository = repository
        self.releases = []  # dicts: tag, draft, assets {name: bytes|tuple}
        self.rate_limited = False
        self.requests = []  # (server, path, headers)
        self.lock = threading.Lock()
        self.api = self._serve("api")
        self.assets = self._serve("assets")
        self.api_url = "http://127.0.0.1:%d" % self.api.server_address[1]
        self.asset_url = "http://127.0.0.1:%d" % self.assets.server_address[1]

    def close(self):
        for server in (self.api, self.assets):
            server.shutdown()
            server.server_close()

    def add(self, tag, assets, draft=False):
        """Adds a release at the front (the newest)."""
        with self.lock:
            self.releases.insert(0, {"tag": tag, "draft": draft, "assets": assets})

    def clear(self):
        with self.lock:
            self.releases = []

    def seen(self, server, prefix=""):
        with self.lock:
            return [r for r in self.requests if r[0] == server and r[1].startswith(prefix)]

    def _listing(self):
        out = []
        for i, r in enumerate(self.releases):
            assets = []
            for name, body in r["assets"].items():
                size = len(body) if isinstance(body, bytes) else 0
                assets.append({"name": name, "size": size,
                               "browser_download_url": "%s/download/%s/%s" % (self.api_url, r["tag"], name)})
            out.append({"id": 1000 + i, "tag_name": r["tag"], "draft": r["draft"],
                        "prerelease": not r["tag"].startswith("stable-"), "assets": assets})
        return out

    def _serve(self, role):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def send_body(self, status, body, headers=()):
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client gave up

            def do_GET(self):
                with fake.lock:
                    fake.requests.append((role, self.path, dict(self.headers.items())))
                if role == "api":
                    self.api_get()
                else:
                    self.asset_get()

            def api_get(self):
                url = urlparse(self.path)
                if url.path == "/repos/%s/releases" % fake.repository:
                    if fake.rate_limited:
                        return self.send_body(403, b'{"message":"API rate limit exceeded"}',
                                              [("X-RateLimit-Remaining", "0"),
                                               ("X-RateLimit-Reset", str(int(time.time()) + 3600))])
                    with fake.lock:
                        listing = fake._listing()
                    etag = '"%s"' % hashlib.sha256(json.dumps(listing).encode()).hexdigest()[:16]
                    page = int(parse_qs(url.query).get("page", ["1"])[0])
                    if page == 1 and self.headers.get("If-None-Match") == etag:
                        return self.send_body(304, b"", [("ETag", etag)])
                    start = (page - 1) * PAGE_SIZE
                    body = json.dumps(listing[start:start + PAGE_SIZE]).encode()
                    headers = [("Content-Type", "application/json"), ("ETag", etag),
                               ("X-RateLimit-Remaining", "59")]
                    if start + PAGE_SIZE < len(listing):
                        headers.append(("Link", '<%s/repos/%s/releases?per_page=100&page=%d>; rel="next"'
                                        % (fake.api_url, fake.repository, page + 1)))
                    return self.send_body(200, body, headers)
                if url.path.startswith("/download/"):
                    rest = url.path[len("/download/"):]
                    return self.send_body(302, b"", [("Location", "%s/%s" % (fake.asset_url, rest))])
                self.send_body(404, b'{"message":"Not Found"}')

            def asset_get(self):
                tag, _, name = self.path.lstrip("/").partition("/")
                body = None
                with fake.lock:
                    for r in fake.releases:
                        if r["tag"] == tag:
                            body = r["assets"].get(name)
                if body is None:
                    return self.send_body(404, b"not found")
                if isinstance(body, bytes):
                    return self.send_body(200, body, [("Content-Type", "application/octet-stream")])
                try:
                    if body[0] == "slow":
                        self.send_response(200)
                        self.send_header("Content-Length", str(len(body[1])))
                        self.end_headers()
                        for i in range(len(body[1])):
                            self.wfile.write(body[1][i:i + 1])
                            self.wfile.flush()
                            time.sleep(1)
                    elif body[0] == "endless":
                        self.send_response(200)
                        self.end_headers()  # no length: until the client stops
                        chunk = b"\0" * 65536
                        while True:
                            self.wfile.write(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                self.close_connection = True

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server
