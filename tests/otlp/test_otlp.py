#!/usr/bin/env python3
"""tests/otlp/test_otlp.py - the gateway's spans, as an OTLP/HTTP JSON collector receives them.

Starts the simulators, a small OTLP receiver (this script, on a free port) and the gateway
with tracing on, then drives calls through them and checks what arrives:

  A. a call Retell delivers (without a traceparent, as the real Retell): one trace from the
     intake span (verify and store as children) to the job, the saga steps, the provider
     operations and each HTTP attempt, with Cal.com's first booking attempt answered 503:
     attempt 1 failed (status code 2, http 503), attempt 2 a retry (gw.retry_reason
     http_503), both with the breaker state; each attempt's span id is the parent id in the
     traceparent the simulator journaled for it.
  B. a webhook sent with a sender's traceparent: the intake span continues that trace.
  C. a malicious traceparent ("mallory@evil.example+15551234567", bare and dressed as a
     55-character traceparent) on a webhook and on an admin request: it is in no log line,
     every correlation id is lowercase hex, and the intake starts a trace of its own; with
     the Cal.com breaker forced open the provider operation's span says breaker_open, state
     open, and is failed.
  D. the collector gone: the gateway still books, and the spans it could not export are
     counted in gw_trace_spans_dropped_total.

Usage: test_otlp.py GATEWAY SIMULATORS REPO_ROOT. Exit 0 when every check holds, 1 with the
failed check and the parts' logs otherwise.
"""
import hashlib
import hmac
import http.server as httpserver
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

RETELL_KEY = "key_sim_retell"
ADMIN_TOKEN = "otlp-test-admin-token"
MALICE = "mallory@evil.example+15551234567"


class Failed(Exception):
    pass


def check(cond, what, *detail):
    if not cond:
        raise Failed(what + ("".join("\n  " + str(d) for d in detail)))


def http(method, url, body=None, headers=None, token=None):
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            raw = r.read()
            return r.status, (json.loads(raw) if raw else None)
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, raw.decode(errors="replace")


def wait_for(what, fn, within=20.0):
    """Polls fn until it returns something true; fails naming what after `within` s."""
    deadline = time.monotonic() + within
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.05)
    raise Failed("timed out waiting for " + what + (": last " + repr(last) if last else ""))


# ---- the receiver ------------------------------------------------------------------------

class Collector:
    """Keeps every span of every accepted export; refuses anything not OTLP/JSON."""

    def __init__(self):
        self.lock = threading.Lock()
        self.spans = []
        self.resources = []
        self.errors = []
        self.exports = 0
        col = self

        class Handler(httpserver.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                ok = self.path == "/v1/traces" and \
                    self.headers.get("Content-Type", "").startswith("application/json")
                try:
                    doc = json.loads(body)
                except ValueError as e:
                    ok = False
                    col.errors.append("not JSON: %s" % e)
                if not ok:
                    col.errors.append("bad export: %s %s" % (self.path, self.headers.get("Content-Type")))
                    self.send_response(400)
                    self.end_headers()
                    return
                with col.lock:
                    col.exports += 1
                    col.headers_seen = dict(self.headers)
                    for rs in doc.get("resourceSpans", []):
                        col.resources.append(rs.get("resource", {}))
                        for ss in rs.get("scopeSpans", []):
                            for sp in ss.get("spans", []):
                                col.spans.append(sp)
                out = b"{}"
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

        self.server = httpserver.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def trace(self, trace_id):
        with self.lock:
            return [s for s in self.spans if s["traceId"] == trace_id]

    def all(self):
        with self.lock:
            return list(self.spans)


def attrs(span):
    out = {}
    for a in span.get("attributes", []):
        v = a["value"]
        if "stringValue" in v:
            out[a["key"]] = v["stringValue"]
        elif "intValue" in v:
            check(isinstance(v["intValue"], str), "intValue is a decimal string", a)
            out[a["key"]] = int(v["intValue"])
        elif "boolValue" in v:
            out[a["key"]] = v["boolValue"]
    return out


def one(spans, what, pred):
    found = [s for s in spans if pred(s)]
    check(len(found) == 1, "exactly one span: %s (found %d)" % (what, len(found)),
          *[json.dumps(s) for s in found[:4]])
    return found[0]


def named(spans, name, parent=None):
    return one(spans, "%s%s" % (name, " under " + parent["name"] if parent else ""),
               lambda s: s["name"] == name and (parent is None or s.get("parentSpanId") == parent["spanId"]))


def well_formed(span):
    check(re.fullmatch(r"[0-9a-f]{32}", span["traceId"]), "traceId is 32 lowercase hex", span)
    check(re.fullmatch(r"[0-9a-f]{16}", span["spanId"]), "spanId is 16 lowercase hex", span)
    if "parentSpanId" in span:
        check(re.fullmatch(r"[0-9a-f]{16}", span["parentSpanId"]), "parentSpanId is 16 hex", span)
    check(isinstance(span["startTimeUnixNano"], str) and isinstance(span["endTimeUnixNano"], str),
          "times are decimal strings", span)
    check(int(span["startTimeUnixNano"]) <= int(span["endTimeUnixNano"]), "start <= end", span)
    check(span["kind"] in (1, 2, 3, 5), "kind is an OTLP SpanKind number", span)


# ---- the parts ---------------------------------------------------------------------------

class Parts:
    def __init__(self, root):
        self.dir = tempfile.mkdtemp(prefix="test_otlp.")
        self.root = root
        self.procs = []
        self.gw = None
        self.collector = Collector()

    def start(self, gateway, simulators):
        simready = os.path.join(self.dir, "sim.ready")
        self.sim_log = open(os.path.join(self.dir, "sim.log"), "w")
        self.procs.append(subprocess.Popen([simulators, "--ready-file", simready, "--seed", "16",
                                            "--log-level", "warn", "--retell-retries", "0"],
                                           stdout=self.sim_log, stderr=subprocess.STDOUT))
        wait_for("simulators ready", lambda: os.path.exists(simready) and os.path.getsize(simready))
        ports = json.load(open(simready))
        self.control = "http://127.0.0.1:%d" % ports["control"]
        cfg = {
            "listen": {"addr": "127.0.0.1", "port": 0, "threads": 2},
            "data_dir": os.path.join(self.dir, "data"),
            "admin_token": ADMIN_TOKEN,
            "log_level": "info",
            "seed": 16,
            "worker": {"threads": 1, "backoff_base_ms": 50, "backoff_cap_ms": 200},
            "providers": {
                "calcom": {"base_url": "http://127.0.0.1:%d" % ports["calcom"],
                           "retry": {"base_ms": 10, "cap_ms": 20}},
                "stripe": {"base_url": "http://127.0.0.1:%d" % ports["stripe"]},
            },
            "tenants": [{
                "id": "acme",
                "retell": {"agent_ids": ["agent_acme_frontdesk"], "api_keys": [RETELL_KEY]},
                "calcom": {"api_key": "cal_sim_key", "event_type_id": 101},
                "stripe": {"api_key": "sk_test_sim", "webhook_secrets": ["whsec_sim_secret"],
                           "currency": "eur",
                           "payment_method": "pm_card_visa"},
            }],
            "tracing": {"endpoint": "http://127.0.0.1:%d/v1/traces" % self.collector.port,
                        "headers": {"X-Collector-Key": {"env": "OTLP_TEST_KEY"}},
                        "service_name": "gateway-under-test", "flush_ms": 100,
                        "batch_size": 64, "timeout_ms": 500},
        }
        cfgpath = os.path.join(self.dir, "gateway.json")
        json.dump(cfg, open(cfgpath, "w"))
        gwready = os.path.join(self.dir, "gw.ready")
        self.gw_log_path = os.path.join(self.dir, "gateway.log")
        self.gw_log = open(self.gw_log_path, "w")
        env = dict(os.environ, OTLP_TEST_KEY="k3y")
        self.gw = subprocess.Popen([gateway, "--config", cfgpath, "--ready-file", gwready],
                                   stdout=self.gw_log, stderr=subprocess.STDOUT, env=env)
        self.procs.append(self.gw)
        wait_for("gateway ready", lambda: os.path.exists(gwready) and os.path.getsize(gwready))
        self.gw_url = "http://127.0.0.1:%d" % json.load(open(gwready))["port"]
        st, _ = http("PUT", self.control + "/control/retell/webhook",
                     {"url": self.gw_url + "/webhooks/retell"})
        check(st in (200, 204), "Retell's webhook URL set", st)

    def call(self, call_id, deposit=None, start="2050-09-05T09:00:00.000Z"):
        fx = json.load(open(os.path.join(self.root, "fixtures/retell/call_booking.json")))
        fx["call_id"] = call_id
        cad = fx["call_analysis"]["custom_analysis_data"]
        cad["booking_start"] = start
        if deposit:
            cad["deposit_cents"] = deposit
        st, call = http("POST", self.control + "/control/retell/calls", fx)
        check(st == 201, "call %s created" % call_id, st, call)
        return call

    def direct_webhook(self, call, traceparent):
        """A signed call_analyzed sent by this script, with the given traceparent."""
        body = json.dumps({"event": "call_analyzed", "call": call}).encode()
        ts = str(int(time.time() * 1000))
        mac = hmac.new(RETELL_KEY.encode(), body + ts.encode(), hashlib.sha256).hexdigest()
        return http("POST", self.gw_url + "/webhooks/retell", body,
                    {"x-retell-signature": "v=%s,d=%s" % (ts, mac), "traceparent": traceparent})

    def saga_state(self, call_id):
        st, doc = http("GET", self.gw_url + "/admin/sagas/" + call_id, token=ADMIN_TOKEN)
        return doc["saga"]["state"] if st == 200 else None

    def journal(self, provider, route):
        st, doc = http("GET", self.control + "/control/journal?provider=%s&kind=request&route=%s"
                       % (provider, urllib.request.quote(route)))
        check(st == 200, "journal read", st, doc)
        return doc["entries"]

    def metric(self, selector):
        with urllib.request.urlopen(self.gw_url + "/metrics", timeout=10) as r:
            text = r.read().decode()
        total = None
        for line in text.splitlines():
            if line.startswith(selector):
                total = (total or 0) + float(line.rsplit(" ", 1)[1])
        return total

    def stop(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        self.collector.stop()

    def dump_logs(self):
        for name in ("gateway.log", "sim.log"):
            path = os.path.join(self.dir, name)
            if os.path.exists(path):
                lines = open(path, errors="replace").read().splitlines()
                sys.stderr.write("---- %s (last 60 lines)\n%s\n" % (name, "\n".join(lines[-60:])))


# ---- the checks ----------------------------------------------------------------------------

def tree_of_a_delivered_call(p):
    # A 503 on the availability read (safe: retried within the operation) and one on the
    # booking (not safe to repeat blindly: the job is retried, and looks for it first).
    for route in ("GET /v2/slots", "POST /v2/bookings"):
        st, rule = http("POST", p.control + "/control/faults",
                        {"provider": "calcom", "route": route,
                         "sequence": [{"times": 1, "status": 503}]})
        check(st == 201, "fault rule set on " + route, st, rule)
    p.call("call_otlp_a", deposit=2500)
    st, rep = http("POST", p.control + "/control/retell/calls/call_otlp_a/webhook",
                   {"event": "call_analyzed"})
    check(st == 200 and [d["status"] for d in rep["deliveries"]] == [204],
          "Retell's delivery acknowledged", st, rep)
    wait_for("saga call_otlp_a completed", lambda: p.saga_state("call_otlp_a") == "completed")

    def intake():
        for s in p.collector.all():
            if s["name"] == "POST /webhooks/retell" and attrs(s).get("gw.entity") == "call_otlp_a":
                return s
    root = wait_for("the intake span of call_otlp_a", intake)
    tid = root["traceId"]
    # The job's span ends last: wait for both attempts' to be in.
    wait_for("the two job spans of call_otlp_a", lambda: len(
        [s for s in p.collector.trace(tid) if s["name"] == "job retell.call_analyzed"]) == 2)
    spans = p.collector.trace(tid)
    for s in spans:
        well_formed(s)
    check(not root.get("parentSpanId"), "the intake of a webhook without traceparent is a root",
          root)
    check(root["kind"] == 2, "the intake span is a SERVER span", root)
    ra = attrs(root)
    check(ra.get("http.response.status_code") == 204 and ra.get("gw.result") == "accepted"
          and ra.get("gw.provider") == "retell" and ra.get("http.route") == "POST /webhooks/retell",
          "intake attributes", ra)
    verify = named(spans, "verify", root)
    check("status" not in verify, "a good signature is no error", verify)
    named(spans, "store", root)
    job1 = one(spans, "job attempt 1", lambda s: s["name"] == "job retell.call_analyzed"
               and attrs(s).get("gw.job.attempt") == 1)
    job2 = one(spans, "job attempt 2", lambda s: s["name"] == "job retell.call_analyzed"
               and attrs(s).get("gw.job.attempt") == 2)
    for j in (job1, job2):
        check(j.get("parentSpanId") == root["spanId"] and j["kind"] == 5,
              "each job attempt is a CONSUMER child of the intake", j)
    check(attrs(job1).get("gw.job.result") == "retry" and job1.get("status", {}).get("code") == 2
          and "503" in job1["status"].get("message", ""), "job attempt 1 failed on the 503", job1)
    check(attrs(job2).get("gw.job.result") == "done" and "status" not in job2, "job attempt 2 done",
          job2)
    find_slot = named(spans, "saga.find_slot", job1)
    book1 = named(spans, "saga.book", job1)
    check(book1.get("status", {}).get("code") == 2 and
          attrs(book1).get("gw.saga.state_after") == "slot_chosen", "the failed book step", book1)
    book2 = named(spans, "saga.book", job2)
    check(attrs(book2).get("gw.saga.state") == "slot_chosen" and
          attrs(book2).get("gw.saga.state_after") == "booked", "book step states", book2)
    charge_step = named(spans, "saga.charge", job2)
    named(spans, "saga.confirm", job2)
    # In-operation retry of the availability read.
    slots = named(spans, "calcom.slots", find_slot)
    sa = attrs(slots)
    check(sa.get("gw.attempts") == 2 and sa.get("gw.outcome") == "ok" and "status" not in slots
          and sa.get("gw.breaker_state") == "closed", "the slots read took two attempts", slots)
    a1 = one(spans, "slots attempt 1", lambda s: s.get("parentSpanId") == slots["spanId"]
             and attrs(s).get("gw.attempt") == 1)
    a2 = one(spans, "slots attempt 2", lambda s: s.get("parentSpanId") == slots["spanId"]
             and attrs(s).get("gw.attempt") == 2)
    a1a, a2a = attrs(a1), attrs(a2)
    check(a1["name"] == "GET calcom.slots" and a1["kind"] == 3 and a1a.get("url.path") == "/v2/slots",
          "attempt span name, kind, path without the query", a1)
    check(a1a.get("http.response.status_code") == 503 and a1.get("status", {}).get("code") == 2,
          "attempt 1: 503 and failed", a1)
    check("gw.retry_reason" not in a1a and a1a.get("gw.breaker_state") == "closed",
          "attempt 1: no retry reason, breaker closed", a1)
    check(a2a.get("gw.retry_reason") == "http_503" and a2a.get("http.response.status_code") == 200
          and "status" not in a2 and a2a.get("gw.breaker_state") == "closed"
          and a2a.get("http.request.resend_count") == 1,
          "attempt 2: a retry after the 503, succeeded", a2)
    # The booking: failed in job attempt 1, looked for then made in attempt 2.
    cb1 = named(spans, "calcom.book", book1)
    check(attrs(cb1).get("gw.outcome") in ("failed", "error") and
          cb1.get("status", {}).get("code") == 2, "the 503 booking operation failed", cb1)
    named(spans, "calcom.find", book2)
    cb2 = named(spans, "calcom.book", book2)
    check(attrs(cb2).get("gw.outcome") == "ok", "the second booking operation", cb2)
    bk = [one(spans, "booking attempt", lambda s, c=c: s.get("parentSpanId") == c["spanId"])
          for c in (cb1, cb2)]
    check(attrs(bk[0]).get("http.response.status_code") == 503, "first booking attempt 503", bk[0])
    charge = named(spans, "stripe.charge", charge_step)
    check(attrs(charge).get("gw.outcome") == "ok", "charge ok", charge)
    ca = one(spans, "charge attempt", lambda s: s.get("parentSpanId") == charge["spanId"])
    # What the providers saw: each attempt's traceparent is its span.
    sent = sorted(e["headers"]["traceparent"] for e in p.journal("calcom", "POST /v2/bookings")
                  if tid in e.get("headers", {}).get("traceparent", ""))
    want = sorted("00-%s-%s-01" % (tid, a["spanId"]) for a in bk)
    check(sent == want, "Cal.com journaled each booking attempt's traceparent", sent, want)
    charges = [e["headers"].get("traceparent") for e in p.journal("stripe", "POST /v1/payment_intents")
               if tid in e.get("headers", {}).get("traceparent", "")]
    check(charges == ["00-%s-%s-01" % (tid, ca["spanId"])], "Stripe journaled the charge's", charges)
    res = p.collector.resources[0]
    check({"key": "service.name", "value": {"stringValue": "gateway-under-test"}}
          in res.get("attributes", []), "resource service.name", res)
    check(p.collector.headers_seen.get("X-Collector-Key") == "k3y", "configured header sent",
          p.collector.headers_seen)
    return tid


def continues_the_senders_trace(p):
    call = p.call("call_otlp_b", start="2050-09-06T10:00:00.000Z")
    tid, sid = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    st, body = p.direct_webhook(call, "00-%s-%s-01" % (tid, sid))
    check(st == 204, "direct webhook accepted", st, body)
    root = wait_for("the intake span in the sender's trace", lambda: [
        s for s in p.collector.trace(tid) if s["name"] == "POST /webhooks/retell"])
    check(root[0].get("parentSpanId") == sid, "the intake span's parent is the sender's", root)
    wait_for("saga call_otlp_b completed", lambda: p.saga_state("call_otlp_b") == "completed")
    books = [e for e in p.journal("calcom", "POST /v2/bookings")
             if tid in e.get("headers", {}).get("traceparent", "")]
    check(len(books) == 1, "the booking carries the sender's trace id", books)


def malicious_traceparent(p):
    evil55 = "00-%s-00f067aa0ba902b7-01" % MALICE
    check(len(evil55) == 55, "the dressed-up value has a traceparent's length")
    # An admin request: its log line ("breaker calcom: force-open") has the server's cid.
    st, body = http("POST", p.gw_url + "/admin/breakers/calcom/force-open", b"",
                    {"traceparent": evil55}, token=ADMIN_TOKEN)
    check(st == 200, "breaker forced open", st, body)
    call = p.call("call_otlp_c", start="2050-09-07T11:00:00.000Z")
    for i, tp in enumerate((MALICE, evil55)):
        if i:
            call = p.call("call_otlp_c%d" % i, start="2050-09-07T12:00:00.000Z")
        st, body = p.direct_webhook(call, tp)
        check(st == 204, "webhook with a malicious traceparent accepted", st, body)

    def breaker_span():
        for s in p.collector.all():
            a = attrs(s)
            if s["name"] == "calcom.slots" and a.get("gw.outcome") == "breaker_open":
                return s
    s = wait_for("a calcom.slots span refused by the open breaker", breaker_span)
    a = attrs(s)
    check(a.get("gw.breaker_state") == "forced_open" and s.get("status", {}).get("code") == 2
          and a.get("gw.attempts") == 0 and "gw.retry_verdict" not in a,
          "breaker_open span: the breaker's state, failed, no attempt", s)
    roots = [x for x in p.collector.all() if x["name"] == "POST /webhooks/retell"
             and attrs(x).get("gw.entity") == "call_otlp_c"]
    check(len(roots) == 1 and not roots[0].get("parentSpanId"),
          "an invalid traceparent starts a new trace", roots)
    st, _ = http("POST", p.gw_url + "/admin/breakers/calcom/reset", b"", token=ADMIN_TOKEN)
    check(st == 200, "breaker reset", st)
    wait_for("saga call_otlp_c completed", lambda: p.saga_state("call_otlp_c") == "completed")
    text = open(p.gw_log_path, errors="replace").read()
    check("mallory" not in text, "the malicious value is in no log line",
          *[l for l in text.splitlines() if "mallory" in l][:3])
    seen = {"force-open": 0, "accepted": 0}
    for line in text.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if "cid" in rec:
            check(re.fullmatch(r"[0-9a-f]{16}|[0-9a-f]{32}", rec["cid"]),
                  "every correlation id is lowercase hex", line)
        msg = rec.get("msg", "")
        if "breaker calcom: force-open" in msg:
            seen["force-open"] += 1
            check("cid" in rec, "the admin action's line has a correlation id", line)
        if re.search(r"call_otlp_c1?:call_analyzed accepted", msg):
            seen["accepted"] += 1
    check(seen == {"force-open": 1, "accepted": 2}, "the lines checked were there", seen)


def dead_collector(p):
    p.collector.stop()
    before = p.metric('gw_trace_spans_dropped_total{reason="export_failed"}') or 0
    call = p.call("call_otlp_d", start="2050-09-08T09:00:00.000Z")
    st, body = p.direct_webhook(call, "00-%032x-%016x-01" % (7, 9))
    check(st == 204, "acknowledged with the collector gone", st, body)
    wait_for("saga call_otlp_d completed", lambda: p.saga_state("call_otlp_d") == "completed")
    wait_for("spans counted as dropped",
             lambda: (p.metric('gw_trace_spans_dropped_total{reason="export_failed"}') or 0) > before)
    check(p.metric("gw_trace_spans_exported_total") > 0, "spans were exported before")


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: test_otlp.py GATEWAY SIMULATORS REPO_ROOT")
    p = Parts(sys.argv[3])
    ok = False
    try:
        p.start(sys.argv[1], sys.argv[2])
        for t in (tree_of_a_delivered_call, continues_the_senders_trace, malicious_traceparent,
                  dead_collector):
            t(p)
            print("ok -", t.__name__)
        check(not p.collector.errors, "every export was OTLP/JSON", *p.collector.errors)
        ok = True
    except Failed as e:
        print("FAILED:", e)
    finally:
        p.stop()
        if ok and p.gw.returncode != 0:
            print("FAILED: the gateway exited with status", p.gw.returncode)
            ok = False
        if not ok:
            p.dump_logs()
            print("kept:", p.dir)
        else:
            shutil.rmtree(p.dir, ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
