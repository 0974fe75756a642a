#!/usr/bin/env python3
"""tests/otlp/otlp_sink.py - a collector for benchmarks: `up` accepts every OTLP/HTTP JSON
export and counts its spans; `blackhole` takes connections and never answers (a collector
hung, or a firewall dropping its packets after the handshake). Writes its port to PORT_FILE,
runs until killed, and on SIGTERM prints "sink: N exports, M spans".

Usage: otlp_sink.py up|blackhole PORT_FILE
"""
import http.server as httpserver
import json
import signal
import socket
import sys
import threading

mode, port_file = sys.argv[1], sys.argv[2]
stats = {"exports": 0, "spans": 0}
lock = threading.Lock()


def done(*_):
    print("sink: %d exports, %d spans" % (stats["exports"], stats["spans"]), flush=True)
    sys.exit(0)


signal.signal(signal.SIGTERM, done)


class Handler(httpserver.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        n = sum(len(ss.get("spans", [])) for rs in json.loads(body).get("resourceSpans", [])
                for ss in rs.get("scopeSpans", []))
        with lock:
            stats["exports"] += 1
            stats["spans"] += n
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")


if mode == "up":
    srv = httpserver.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port = srv.server_address[1]
else:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1024)  # never accepted: the kernel completes handshakes, nobody answers
    port = srv.getsockname()[1]
with open(port_file + ".tmp", "w") as f:
    f.write(str(port))
import os  # noqa: E402
os.rename(port_file + ".tmp", port_file)
if mode == "up":
    srv.serve_forever()
else:
    signal.pause()
