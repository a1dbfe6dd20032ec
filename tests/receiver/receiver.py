#!/usr/bin/python3
"""A test monitoring API: a real HTTP server on loopback that takes
POST /api/v1/metrics like the central API does, validates every payload
against tests/schema/system-metrics.schema.json, checks the key and the
content type, and records everything it received.

Test control, on the same port:
  POST /_control  {"status": 500, "delay": 2.5, "retry_after": "3", "body": "..."}
                  makes the following answers that status (after that delay);
                  {} goes back to normal
  GET  /_received every request so far, as a JSON list

Usage: receiver.py --port PORT --key KEY [--schema FILE] [--log FILE]
                   [--record FILE] [--tls CERT KEY]
"""
import argparse
import json
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jsonschema

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


class State:
    def __init__(self, key, schema, record):
        self.key = key
        self.record = record
        self.validator = jsonschema.Draft7Validator(schema)
        self.lock = threading.Lock()
        self.mode = {}
        self.received = []


def make_handler(state, log):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the real API

        def log_message(self, fmt, *args):
            if log:
                log.write((fmt % args) + "\n")
                log.flush()

        def reply(self, status, obj, extra=None):
            body = (json.dumps(obj) + "\n").encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path == "/_received":
                with state.lock:
                    self.reply(200, state.received)
            else:
                self.reply(404, {"code": 404, "message": "not found"})

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            if self.path == "/_control":
                with state.lock:
                    state.mode = json.loads(raw or b"{}")
                self.reply(200, {"ok": True})
                return
            if self.path != "/api/v1/metrics":
                self.reply(404, {"code": 404, "message": "not found"})
                return
            with state.lock:
                mode = dict(state.mode)
            if mode.get("delay"):
                time.sleep(mode["delay"])
            record = {
                "time": time.time(),
                "client_port": self.client_address[1],
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "forced": mode.get("status"),
            }
            errors = []
            payload = None
            try:
                payload = json.loads(raw)
                errors = [e.message for e in state.validator.iter_errors(payload)]
                if not RFC3339.match(str(payload.get("timestamp"))):
                    errors.append("timestamp is not RFC 3339: %r" % payload.get("timestamp"))
            except ValueError as e:
                errors = ["not JSON: %s" % e]
            if self.headers.get("Content-Type") != "application/json":
                errors.append("Content-Type is %r" % self.headers.get("Content-Type"))
            record["payload"] = payload
            record["errors"] = errors
            key_ok = self.headers.get("X-API-Key") == state.key
            record["key_ok"] = key_ok
            with state.lock:
                state.received.append(record)
                if state.record:
                    # Appended and flushed: tests read it across restarts.
                    state.record.write(json.dumps(record) + "\n")
                    state.record.flush()
            if mode.get("status"):
                extra = {"Retry-After": mode["retry_after"]} if mode.get("retry_after") else None
                self.reply(mode["status"], {"code": mode["status"],
                                            "message": mode.get("body", "forced by the test")}, extra)
            elif not key_ok:
                self.reply(401, {"code": 401, "message": "Invalid API key"})
            elif errors:
                self.reply(400, {"code": 400, "message": "; ".join(errors)[:500]})
            else:
                self.reply(200, {"success": True, "node": payload["system"].get("hostname", "")})

    return Handler


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--schema", default="tests/schema/system-metrics.schema.json")
    ap.add_argument("--log")
    ap.add_argument("--record", help="append every request to this JSONL file")
    ap.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"), help="serve HTTPS with this certificate")
    args = ap.parse_args()
    schema = json.load(open(args.schema))
    state = State(args.key, schema, open(args.record, "a") if args.record else None)
    log = open(args.log, "a") if args.log else None
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(state, log))
    server.daemon_threads = True
    if args.tls:
        import ssl
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls[0], args.tls[1])
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    print("listening", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    sys.exit(0)


if __name__ == "__main__":
    main()
