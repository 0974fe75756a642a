#!/usr/bin/env python3
"""hostile.py - attack and measurement clients for ci/bench-hostile (standard library only).

Modes (each runs for --duration seconds, then prints one JSON line of figures on stdout):
  slowloris  --conns N      keeps N connections each sending a header byte a second and
                            never ending the head; a connection the server closes is
                            opened again at once, so the attack stays at N.
  idle       --conns N      keeps N keep-alive connections that sent one complete request
                            (GET /health/live) and then say nothing; reopened when closed.
  flood      --rate R       forged webhooks (fresh timestamps, random MACs) with --body-kb
                            bodies, R a second over --flood-conns keep-alive connections,
                            rotating over --paths.
  valid      --rate R       validly signed, distinct Retell call_analyzed webhooks, each on
                            a fresh connection as a provider's delivery; counts those
                            answered 2xx within --ack-ms of the start of the connect.
The attacks use one thread and non-blocking sockets; the valid sender one thread per
webhook, so a slow answer never delays the next one.
"""
import argparse
import hashlib
import hmac
import json
import random
import resource
import selectors
import socket
import string
import sys
import threading
import time


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Conn:
    __slots__ = ("sock", "state", "out", "next_at")


def connect(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    try:
        s.connect(("127.0.0.1", port))
    except BlockingIOError:
        pass
    except OSError:
        s.close()
        return None
    return s


def keep_open(args, first_bytes, trickle):
    """The two connection attacks. first_bytes: sent when connected; trickle: one byte
    sent every --interval seconds after that (None: send nothing more, idle)."""
    raise_nofile()
    sel = selectors.DefaultSelector()
    stats = {"opened": 0, "closed_by_server": 0, "connect_failed": 0, "bytes_trickled": 0}
    conns = []
    end = time.monotonic() + args.duration

    def open_one():
        s = connect(args.port)
        if s is None:
            stats["connect_failed"] += 1
            return None
        c = Conn()
        c.sock, c.state, c.out = s, "connecting", first_bytes
        # Spread the trickle over the interval so the bytes do not arrive in bursts.
        c.next_at = time.monotonic() + random.random() * args.interval
        sel.register(s, selectors.EVENT_WRITE | selectors.EVENT_READ, c)
        stats["opened"] += 1
        return c

    for _ in range(args.conns):
        c = open_one()
        if c:
            conns.append(c)
    while time.monotonic() < end:
        # Reopen what the server closed (or what failed to connect), up to N.
        while len(conns) < args.conns:
            c = open_one()
            if c is None:
                break
            conns.append(c)
        timeout = 0.05
        for key, ev in sel.select(timeout):
            c = key.data
            dead = False
            if ev & selectors.EVENT_READ:
                try:
                    data = c.sock.recv(65536)
                    if not data:
                        dead = True
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:
                    dead = True
            if not dead and ev & selectors.EVENT_WRITE and c.out:
                try:
                    n = c.sock.send(c.out)
                    c.out = c.out[n:]
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:
                    dead = True
            if not dead and not c.out:
                try:
                    sel.modify(c.sock, selectors.EVENT_READ, c)
                except (KeyError, ValueError):
                    dead = True
            if dead:
                stats["closed_by_server"] += 1  # the attack itself closes nothing before the end
                sel.unregister(c.sock)
                c.sock.close()
                c.state = "dead"
        conns = [c for c in conns if c.state != "dead"]
        if trickle is not None:
            now = time.monotonic()
            for c in conns:
                if not c.out and now >= c.next_at:
                    try:
                        c.sock.send(trickle)
                        stats["bytes_trickled"] += 1
                    except (BlockingIOError, InterruptedError):
                        pass
                    except OSError:
                        pass  # the read side sees the close
                    c.next_at = now + args.interval
    stats["open_at_end"] = len(conns)
    for c in conns:
        c.sock.close()
    return stats


def retell_sig(key, body, ts_ms):
    d = hmac.new(key.encode(), body + str(ts_ms).encode(), hashlib.sha256).hexdigest()
    return "v=%d,d=%s" % (ts_ms, d)


def read_response(sock, deadline):
    """Reads one HTTP response; returns (status, headers bytes) or raises."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no answer in time")
        sock.settimeout(left)
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("closed before an answer")
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    clen = 0
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            clen = int(v.strip())
    while len(rest) < clen:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("body not in time")
        sock.settimeout(left)
        data = sock.recv(65536)
        if not data:
            break
        rest += data
    return status, head


def valid(args):
    key, agent = args.key, args.agent
    results = []
    lock = threading.Lock()
    rng = random.Random(args.seed)
    alnum = string.ascii_letters + string.digits

    def one(i, call_id):
        ts = int(time.time() * 1000)
        body = json.dumps({"event": "call_analyzed",
                           "call": {"call_id": call_id, "agent_id": agent,
                                    "call_status": "ended", "start_timestamp": ts - 90000,
                                    "end_timestamp": ts - 6000}},
                          separators=(",", ":")).encode()
        sig = retell_sig(key, body, ts)
        path = args.path
        req = ("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               "x-retell-signature: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
               % (path, sig, len(body))).encode() + body
        t0 = time.monotonic()
        deadline = t0 + args.ack_ms / 1000.0
        outcome, status = "error", 0
        s = None
        try:
            s = socket.create_connection(("127.0.0.1", args.port), timeout=args.ack_ms / 1000.0)
            s.sendall(req)
            status, _ = read_response(s, deadline)
            outcome = "acked" if 200 <= status < 300 else "status_%d" % status
        except TimeoutError:
            outcome = "timeout"
        except socket.timeout:
            outcome = "timeout"
        except ConnectionRefusedError:
            outcome = "refused"
        except ConnectionResetError:
            outcome = "reset"
        except (ConnectionError, OSError) as e:
            outcome = "closed" if isinstance(e, ConnectionError) else "oserror"
        finally:
            if s:
                s.close()
        ms = (time.monotonic() - t0) * 1000
        if outcome == "acked" and ms > args.ack_ms:
            outcome = "late"
        with lock:
            results.append((outcome, ms))

    threads = []
    start = time.monotonic()
    n = int(args.rate * args.duration)
    for i in range(n):
        at = start + i / args.rate
        d = at - time.monotonic()
        if d > 0:
            time.sleep(d)
        cid = args.id_prefix + "".join(rng.choice(alnum) for _ in range(24))
        t = threading.Thread(target=one, args=(i, cid), daemon=True)
        t.start()
        threads.append(t)
    for t in threads:
        t.join(args.ack_ms / 1000.0 + 5)
    outcomes = {}
    for o, _ in results:
        outcomes[o] = outcomes.get(o, 0) + 1
    lat = sorted(ms for o, ms in results if o == "acked")
    acked = len(lat)

    def pct(p):
        return round(lat[min(len(lat) - 1, int(p * len(lat)))], 1) if lat else None
    return {"sent": n, "acked_within": acked, "ack_ms": args.ack_ms,
            "acked_pct": round(100.0 * acked / n, 2) if n else 0.0,
            "p50_ms": pct(0.5), "p99_ms": pct(0.99), "max_ms": round(lat[-1], 1) if lat else None,
            "outcomes": outcomes}


def flood(args):
    paths = args.paths.split(",")
    body_len = args.body_kb * 1024
    stats = {"sent": 0, "statuses": {}, "errors": 0}
    lock = threading.Lock()
    end = time.monotonic() + args.duration
    interval = args.flood_conns / args.rate
    rng = random.Random(args.seed)

    def forged_request(path, i):
        ts_ms = int(time.time() * 1000)
        pad = "x" * (body_len - 200)
        body = ('{"event":"call_analyzed","call":{"call_id":"forged_%d","agent_id":"%s",'
                '"pad":"%s"}}' % (i, args.agent, pad)).encode()
        mac = "%064x" % rng.getrandbits(256)
        if "/calcom" in path:
            hdr = "X-Cal-Signature-256: %s" % mac
        elif "/stripe" in path:
            hdr = "Stripe-Signature: t=%d,v1=%s" % (ts_ms // 1000, mac)
        else:
            hdr = "x-retell-signature: v=%d,d=%s" % (ts_ms, mac)
        return ("POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                "%s\r\nContent-Length: %d\r\n\r\n" % (path, hdr, len(body))).encode() + body

    def worker(w):
        s = None
        i = w
        next_at = time.monotonic() + w * interval / args.flood_conns
        while time.monotonic() < end:
            d = next_at - time.monotonic()
            if d > 0:
                time.sleep(d)
            next_at += interval
            path = paths[i % len(paths)]
            req = forged_request(path, i)
            i += args.flood_conns
            try:
                if s is None:
                    s = socket.create_connection(("127.0.0.1", args.port), timeout=5)
                s.sendall(req)
                status, head = read_response(s, time.monotonic() + 5)
                with lock:
                    stats["sent"] += 1
                    k = str(status)
                    stats["statuses"][k] = stats["statuses"].get(k, 0) + 1
                if b"close" in head.lower():
                    s.close()
                    s = None
            except (OSError, ValueError, IndexError):
                with lock:
                    stats["errors"] += 1
                if s:
                    s.close()
                s = None
        if s:
            s.close()

    threads = [threading.Thread(target=worker, args=(w,), daemon=True)
               for w in range(args.flood_conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return stats


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("mode", choices=["slowloris", "idle", "flood", "valid"])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--duration", type=float, default=20)
    p.add_argument("--conns", type=int, default=1100)
    p.add_argument("--interval", type=float, default=1.0, help="slowloris: s between bytes")
    p.add_argument("--rate", type=float, default=20)
    p.add_argument("--key", default="key_bench_0_0")
    p.add_argument("--agent", default="agent_bench_0")
    p.add_argument("--path", default="/webhooks/retell")
    p.add_argument("--id-prefix", default="call_valid_")
    p.add_argument("--ack-ms", type=float, default=1000)
    p.add_argument("--paths", default="/webhooks/retell")
    p.add_argument("--body-kb", type=int, default=256)
    p.add_argument("--flood-conns", type=int, default=4)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    random.seed(args.seed)
    if args.mode == "slowloris":
        head = b"POST /webhooks/retell HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        out = keep_open(args, head, b"a")
    elif args.mode == "idle":
        out = keep_open(args, b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", None)
    elif args.mode == "flood":
        out = flood(args)
    else:
        out = valid(args)
    out["mode"] = args.mode
    print(json.dumps(out, sort_keys=True))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
