#!/usr/bin/env python3
"""naive-gateway - a booking gateway written the way the audited one was, on purpose.

It books: a Retell call_analyzed webhook asking for a slot is looked up at Cal.com v2,
booked there with the caller's details, and its deposit charged at Stripe. But it keeps
every defect the seed audit ("Integration Health Report - AskProAI API Gateway") lists,
so that the bench can show it names them (README.md has the list, each with the audit line
it copies; grep this file for "DEFECT").

Runs under the bench's gateway contract (docs/contract.md): everything comes from the BB_*
environment, it listens on BB_LISTEN_ADDR:BB_PORT and keeps its SQLite file in BB_DATA_DIR.

    scenario --gateway-cmd 'python3 examples/naive-gateway/gateway.py' scenarios/contract

Python 3 standard library only (Debian's python3).
"""
import datetime
import hashlib
import hmac
import json
import os
import signal
import sqlite3
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Bodies above this are refused with 413 before they are read (what any web server does).
BODY_LIMIT = 256 * 1024

# DEFECT (timeouts): "Fixed 10-second timeout for all requests" - every outbound call, read
# or write, slot look-up or payment, waits up to 10 s.
HTTP_TIMEOUT_S = 10

# DEFECT (retries): "Fixed 3 retries with 100ms sleep ... No exponential backoff ... No
# jitter" - and "Only retries on 5xx and connection errors" (a 429 is not retried, a
# timed-out booking POST is).
RETRIES = 3
RETRY_SLEEP_S = 0.100

# DEFECT (availability cache): "Availability cached for 5 minutes (too long)" - and never
# dropped after a booking of our own.
SLOT_CACHE_S = 300

# DEFECT (breakers): "Only Cal.com actually uses it. Retell and Stripe have no circuit
# breaker". The audit's CircuitBreaker: 5 failures, then open; the bench's brief: 30 s.
BREAKER_FAILURES = 5
BREAKER_OPEN_S = 30
BREAKER_SUCCESSES = 2
BREAKER_HALF_OPEN_CALLS = 3

CALCOM_SLOTS_VERSION = "2024-09-04"
CALCOM_BOOKINGS_VERSION = "2024-08-13"
STRIPE_VERSION = "2024-06-20"
STRIPE_TOLERANCE_S = 300


def env(name, default=None):
    v = os.environ.get(name, default)
    if v is None or v == "":
        sys.stderr.write("naive-gateway: %s is not set (docs/contract.md)\n" % name)
        sys.exit(2)
    return v


CFG = {
    "addr": env("BB_LISTEN_ADDR", "127.0.0.1"),
    "port": int(env("BB_PORT")),
    "data_dir": env("BB_DATA_DIR"),
    "tenant": env("BB_TENANT_ID", "acme"),
    "calcom_url": env("BB_CALCOM_URL").rstrip("/"),
    "calcom_key": env("BB_CALCOM_API_KEY"),
    "event_type_id": int(env("BB_CALCOM_EVENT_TYPE_ID", "101")),
    "calcom_secret": env("BB_CALCOM_WEBHOOK_SECRET"),
    "stripe_url": env("BB_STRIPE_URL").rstrip("/"),
    "stripe_key": env("BB_STRIPE_API_KEY"),
    "stripe_secret": env("BB_STRIPE_WEBHOOK_SECRET"),
    "currency": env("BB_STRIPE_CURRENCY", "eur"),
    "payment_method": env("BB_STRIPE_PAYMENT_METHOD", "pm_card_visa"),
    # Read, never used: see verify_retell.
    "retell_key": os.environ.get("BB_RETELL_API_KEY", ""),
}
DB_PATH = os.path.join(CFG["data_dir"], "naive.db")

_log_lock = threading.Lock()


def log(level, message, **context):
    """One Laravel-style line: "[date] production.LEVEL: message {context}".

    DEFECT (logging): the context goes out as it is - the caller's phone number and e-mail
    address in clear (the audit's "Sensitive data masking implemented" was not applied to
    the webhook paths; the bench checks the log for them)."""
    line = "[%s] production.%s: %s %s\n" % (
        datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S"), level, message,
        json.dumps(context, sort_keys=True) if context else "[]")
    with _log_lock:
        sys.stdout.write(line)
        sys.stdout.flush()


def db():
    """A connection per request, as PHP has one per request."""
    c = sqlite3.connect(DB_PATH, timeout=10)
    c.row_factory = sqlite3.Row
    return c


def migrate():
    c = db()
    # DEFECT (dedup): "Database unique constraints not enforced" - no UNIQUE on event_key.
    c.executescript("""
        CREATE TABLE IF NOT EXISTS webhook_events (
            id INTEGER PRIMARY KEY, provider TEXT, event_key TEXT, payload TEXT,
            status TEXT, created_at TEXT);
        CREATE TABLE IF NOT EXISTS calls (
            id INTEGER PRIMARY KEY, call_id TEXT, from_number TEXT, attendee_email TEXT,
            booking_uid TEXT, payment_intent TEXT, status TEXT, updated_at TEXT);
    """)
    c.commit()
    c.close()


# ---- outbound HTTP ------------------------------------------------------------------------


class Answer:
    def __init__(self, status, body):
        self.status = status
        self.body = body

    def json(self):
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            return None


class ProviderError(Exception):
    pass


def http(method, url, headers, body=None):
    """One request with the RetryableHttpClient's rules: up to RETRIES more tries, RETRY_SLEEP_S
    apart, on a 5xx or a connection error (a timeout is one); anything else is the answer."""
    attempt = 0
    while True:
        req = urllib.request.Request(url, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT_S) as r:
                return Answer(r.status, r.read())
        except urllib.error.HTTPError as e:
            ans = Answer(e.code, e.read())
            if e.code < 500 or attempt >= RETRIES:
                return ans
            log("WARNING", "HTTP %d from %s, retrying" % (e.code, url), attempt=attempt + 1)
        except (urllib.error.URLError, OSError) as e:
            if attempt >= RETRIES:
                raise ProviderError("%s %s: %s" % (method, url, e))
            log("WARNING", "connection error to %s, retrying: %s" % (url, e), attempt=attempt + 1)
        attempt += 1
        time.sleep(RETRY_SLEEP_S)


class CircuitBreaker:
    """The audit's "Good Implementation Found": closed, open after BREAKER_FAILURES failed
    calls in a row, half-open after BREAKER_OPEN_S (BREAKER_HALF_OPEN_CALLS trial calls,
    BREAKER_SUCCESSES of them close it, a failure opens it again)."""

    def __init__(self, name):
        self.name = name
        self.lock = threading.Lock()
        self.state = "closed"
        self.failures = 0
        self.successes = 0
        self.opened_at = 0.0
        self.trials = 0

    def call(self, fn):
        with self.lock:
            if self.state == "open":
                if time.monotonic() - self.opened_at < BREAKER_OPEN_S:
                    raise ProviderError("circuit breaker %s is open" % self.name)
                self.state, self.trials, self.successes = "half_open", 0, 0
                log("INFO", "circuit breaker %s half-open" % self.name)
            if self.state == "half_open":
                if self.trials >= BREAKER_HALF_OPEN_CALLS:
                    raise ProviderError("circuit breaker %s is half-open, trials in use" % self.name)
                self.trials += 1
        try:
            result = fn()
        except ProviderError:
            self.failed()
            raise
        self.succeeded()
        return result

    def failed(self):
        with self.lock:
            self.failures += 1
            if self.state == "half_open" or self.failures >= BREAKER_FAILURES:
                self.state, self.opened_at, self.failures = "open", time.monotonic(), 0
                log("ERROR", "circuit breaker %s opened" % self.name)

    def succeeded(self):
        with self.lock:
            self.failures = 0
            if self.state == "half_open":
                self.successes += 1
                if self.successes >= BREAKER_SUCCESSES:
                    self.state = "closed"
                    log("INFO", "circuit breaker %s closed" % self.name)


CALCOM_BREAKER = CircuitBreaker("calcom")
_slot_cache = {}
_slot_cache_lock = threading.Lock()


def calcom(method, path, version, payload=None):
    headers = {"Authorization": "Bearer " + CFG["calcom_key"], "cal-api-version": version}
    body = None
    if payload is not None:
        headers["Content-Type"] = "application/json"
        body = json.dumps(payload).encode()

    def go():
        ans = http(method, CFG["calcom_url"] + path, headers, body)
        if ans.status >= 500:
            raise ProviderError("Cal.com %s %s: HTTP %d" % (method, path, ans.status))
        return ans

    return CALCOM_BREAKER.call(go)


def parse_instant(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))


def free_slots(event_type_id, day):
    """The day's free starts at Cal.com, from the cache when it has them (SLOT_CACHE_S)."""
    key = (event_type_id, day)
    with _slot_cache_lock:
        hit = _slot_cache.get(key)
        if hit and time.monotonic() - hit[0] < SLOT_CACHE_S:
            return hit[1]
    nxt = (datetime.date.fromisoformat(day) + datetime.timedelta(days=1)).isoformat()
    q = urllib.parse.urlencode({"eventTypeId": event_type_id, "start": day, "end": nxt,
                                "timeZone": "UTC"})
    ans = calcom("GET", "/v2/slots?" + q, CALCOM_SLOTS_VERSION)
    if ans.status != 200:
        raise ProviderError("Cal.com slots: HTTP %d %s" % (ans.status, ans.body[:200]))
    starts = []
    for date_key, day_slots in (ans.json() or {}).get("data", {}).items():
        for slot in day_slots:
            starts.append(parse_instant(slot["start"]))
    with _slot_cache_lock:
        _slot_cache[key] = (time.monotonic(), starts)
    return starts


# ---- the booking, in the webhook's own request ------------------------------------------


def book_call(call):
    call_id = call.get("call_id")
    cad = (call.get("call_analysis") or {}).get("custom_analysis_data") or {}
    start = cad.get("booking_start")
    if not start:
        log("INFO", "call has no booking request", call_id=call_id)
        return
    name, email = cad.get("attendee_name"), cad.get("attendee_email")
    phone = cad.get("attendee_phone") or call.get("from_number")
    tz = cad.get("time_zone") or "UTC"
    event_type_id = int(cad.get("event_type_id") or CFG["event_type_id"])
    deposit = int(cad.get("deposit_cents") or 0)
    log("INFO", "booking requested", call_id=call_id, attendee_name=name, attendee_email=email,
        attendee_phone=phone, start=start, deposit_cents=deposit)
    c = db()
    c.execute("INSERT INTO calls (call_id, from_number, attendee_email, status, updated_at) "
              "VALUES (?, ?, ?, 'received', datetime('now'))", (call_id, phone, email))
    c.commit()

    wanted = parse_instant(start)
    if wanted not in free_slots(event_type_id, wanted.date().isoformat()):
        log("WARNING", "Time slot no longer available", call_id=call_id, attendee_email=email,
            start=start)
        c.execute("UPDATE calls SET status='no_slot' WHERE call_id=?", (call_id,))
        c.commit()
        return

    attendee = {"name": name, "email": email, "timeZone": tz}
    if phone:
        attendee["phoneNumber"] = phone
    ans = calcom("POST", "/v2/bookings", CALCOM_BOOKINGS_VERSION, {
        "start": wanted.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "eventTypeId": event_type_id, "attendee": attendee,
        "metadata": {"retell_call_id": call_id}})
    if ans.status not in (200, 201):
        log("ERROR", "Cal.com booking failed", call_id=call_id, status=ans.status,
            body=ans.body[:300].decode("utf-8", "replace"), attendee_email=email)
        c.execute("UPDATE calls SET status='failed' WHERE call_id=?", (call_id,))
        c.commit()
        return
    uid = ((ans.json() or {}).get("data") or {}).get("uid")
    c.execute("UPDATE calls SET booking_uid=?, status='booked' WHERE call_id=?", (uid, call_id))
    c.commit()
    log("INFO", "appointment booked", call_id=call_id, booking_uid=uid, attendee_email=email,
        attendee_phone=phone)

    if deposit <= 0:
        return
    # DEFECT (breakers): Stripe is called straight, no breaker in front of it.
    form = urllib.parse.urlencode({
        "amount": str(deposit), "currency": CFG["currency"],
        "payment_method": CFG["payment_method"], "confirm": "true",
        "payment_method_types[0]": "card", "metadata[retell_call_id]": call_id}).encode()
    try:
        ans = http("POST", CFG["stripe_url"] + "/v1/payment_intents", {
            "Authorization": "Bearer " + CFG["stripe_key"],
            "Content-Type": "application/x-www-form-urlencoded",
            "Stripe-Version": STRIPE_VERSION,
            # The audit: Stripe's "Idempotency handled correctly".
            "Idempotency-Key": "deposit-%s" % call_id}, form)
        intent = ans.json() or {}
        ok = ans.status == 200 and intent.get("status") in ("succeeded", "requires_capture",
                                                             "processing")
    except ProviderError as e:
        ok, intent = False, {"error": str(e)}
    if not ok:
        # DEFECT (compensation): "Booking created in DB but Cal.com API fails - No saga
        # pattern or compensation" - the booking stays, nobody cancels it.
        log("ERROR", "deposit charge failed, booking kept", call_id=call_id, booking_uid=uid,
            attendee_email=email, attendee_phone=phone, answer=intent)
        c.execute("UPDATE calls SET status='payment_failed' WHERE call_id=?", (call_id,))
        c.commit()
        return
    c.execute("UPDATE calls SET payment_intent=?, status='charged' WHERE call_id=?",
              (intent.get("id"), call_id))
    c.commit()
    log("INFO", "deposit charged", call_id=call_id, payment_intent=intent.get("id"),
        amount=deposit, attendee_email=email)


# ---- webhooks -----------------------------------------------------------------------------


def verify_retell(body, header):
    # DEFECT (webhook security): copied from the audit,
    #   // app/Services/WebhookProcessor.php:447-457
    #   // TEMPORARY: Bypass signature verification for Retell webhooks
    #   return true; // Temporarily allow all Retell webhooks
    return True


def verify_calcom(body, header):
    expected = hmac.new(CFG["calcom_secret"].encode(), body, hashlib.sha256).hexdigest()
    # DEFECT (webhook security): "Timing attacks possible" - a plain comparison, and "No
    # replay protection": a signature is good for ever.
    return header == expected


def verify_stripe(body, header):
    # The audit: Stripe has "Proper webhook signature verification".
    parts = [p.split("=", 1) for p in (header or "").split(",") if "=" in p]
    ts = [v for k, v in parts if k == "t"]
    sigs = [v for k, v in parts if k == "v1"]
    if not ts or not sigs or not ts[0].isdigit():
        return False
    if abs(time.time() - int(ts[0])) > STRIPE_TOLERANCE_S:
        return False
    expected = hmac.new(CFG["stripe_secret"].encode(), ts[0].encode() + b"." + body,
                        hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, s) for s in sigs)


def is_duplicate(c, key):
    row = c.execute("SELECT id FROM webhook_events WHERE event_key=?", (key,)).fetchone()
    return row is not None


def record_event(c, provider, key, body, status="received"):
    c.execute("INSERT INTO webhook_events (provider, event_key, payload, status, created_at) "
              "VALUES (?, ?, ?, ?, datetime('now'))",
              (provider, key, body.decode("utf-8", "replace"), status))
    c.commit()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "naive-gateway/1.0"

    def log_message(self, fmt, *args):
        log("DEBUG", "%s %s" % (self.address_string(), fmt % args))

    def answer(self, status, payload=None):
        body = json.dumps(payload).encode() if payload is not None else b""
        self.send_response(status)
        if body:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path.split("?")[0] == "/health":
            self.answer(200, {"status": "ok"})
        else:
            self.answer(404, {"error": "not found"})

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n > BODY_LIMIT:
            self.close_connection = True
            self.answer(413, {"error": "payload too large"})
            return None
        return self.rfile.read(n)

    def do_POST(self):
        route = self.path.split("?")[0]
        handlers = {"/webhooks/retell": self.retell, "/webhooks/calcom": self.calcom,
                    "/webhooks/stripe": self.stripe}
        if route not in handlers:
            self.answer(404, {"error": "not found"})
            return
        body = self.read_body()
        if body is None:
            return
        try:
            handlers[route](body)
        except Exception as e:  # the controller's catch-all: logged, answered 500
            log("ERROR", "webhook %s failed: %r" % (route, e))
            self.answer(500, {"error": "internal error"})

    def parsed(self, body):
        try:
            v = json.loads(body)
        except ValueError:
            return None
        return v if isinstance(v, dict) else None

    def retell(self, body):
        if not verify_retell(body, self.headers.get("x-retell-signature")):
            self.answer(401, {"error": "invalid signature"})
            return
        ev = self.parsed(body)
        call = ev.get("call") if ev else None
        if not ev or not isinstance(call, dict) or not ev.get("event") or not call.get("call_id"):
            self.answer(400, {"error": "event and call.call_id required"})
            return
        log("INFO", "Retell webhook received", event=ev["event"], call_id=call["call_id"],
            from_number=call.get("from_number"), to_number=call.get("to_number"))
        key = "retell:%s:%s" % (call["call_id"], ev["event"])
        c = db()
        # DEFECT (dedup): check, then insert, no lock and no unique key - "RACE CONDITION
        # HERE". The event is written once it has been processed (the audit's "Redis says
        # processed, DB says pending": the mark comes last), so every copy that arrives
        # while the first is still being booked passes the check and books again.
        if is_duplicate(c, key):
            log("INFO", "duplicate Retell webhook ignored", call_id=call["call_id"])
            self.answer(200, {"success": True, "duplicate": True})
            return
        status = "processed"
        if ev["event"] == "call_analyzed":
            # DEFECT (async processing): "Synchronous webhook processing" - the booking and
            # the charge happen here, and Retell waits for them before it hears back.
            try:
                book_call(call)
            except ProviderError as e:
                # DEFECT (retries and DLQ): "Webhook failures are logged but not retried. No
                # dead letter queue" - the call is lost, Retell is told all is well.
                log("ERROR", "booking failed, webhook dropped", call_id=call["call_id"],
                    error=str(e), from_number=call.get("from_number"))
                status = "failed"
        record_event(c, "retell", key, body, status)
        self.answer(200, {"success": True})

    def calcom(self, body):
        if not verify_calcom(body, self.headers.get("X-Cal-Signature-256")):
            self.answer(401, {"error": "invalid signature"})
            return
        ev = self.parsed(body)
        if not ev or not ev.get("triggerEvent"):
            self.answer(400, {"error": "triggerEvent required"})
            return
        p = ev.get("payload") or {}
        key = "calcom:%s:%s:%s" % (ev["triggerEvent"], p.get("uid"), ev.get("createdAt"))
        c = db()
        if is_duplicate(c, key):
            self.answer(200, {"success": True, "duplicate": True})
            return
        record_event(c, "calcom", key, body)
        log("INFO", "Cal.com webhook received", trigger=ev["triggerEvent"], uid=p.get("uid"),
            attendees=p.get("attendees"))
        self.answer(200, {"success": True})

    def stripe(self, body):
        if not verify_stripe(body, self.headers.get("Stripe-Signature")):
            self.answer(401, {"error": "invalid signature"})
            return
        ev = self.parsed(body)
        if not ev or not ev.get("id") or not ev.get("type"):
            self.answer(400, {"error": "id and type required"})
            return
        key = "stripe:%s" % ev["id"]
        c = db()
        if is_duplicate(c, key):
            self.answer(200, {"success": True, "duplicate": True})
            return
        record_event(c, "stripe", key, body)
        log("INFO", "Stripe webhook received", type=ev["type"], id=ev["id"])
        self.answer(200, {"success": True})


def main():
    migrate()
    server = ThreadingHTTPServer((CFG["addr"], CFG["port"]), Handler)
    server.daemon_threads = True

    def stop(signum, frame):
        log("INFO", "shutting down on signal %d" % signum)
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log("INFO", "naive-gateway listening on %s:%d, data in %s" % (CFG["addr"], CFG["port"],
                                                                  DB_PATH))
    server.serve_forever()
    server.server_close()


if __name__ == "__main__":
    main()
