#!/usr/bin/env python3
"""Reloads under load: liege against uWSGI 2.0 (docs/performance.md, section 2).

For each server: start it on 127.0.0.1 with the hello app and 2 workers, measure a baseline
(load, no reloads), then load it again while the master gets --reloads SIGHUPs spread over
--duration seconds. The load is --clients threads, half on kept-alive connections and half on a
fresh connection per request. Counted per phase: requests, failures (connect errors, resets,
timeouts, non-200), p50/p99/worst latency. Prints a Markdown table; --json writes raw numbers.

A kept-alive connection that the server closes between two responses (uWSGI's --http-socket
does after every response) is reopened and the request sent again only when nothing at all came
back on the old one (EOF, reset or broken pipe before the first byte, as HTTP clients do for
idempotent requests); that is a reconnect, reported apart, not a failure (the same rule as
peers.py's "read errors"). Any error on a fresh connection, or after the first byte, fails.

Standard library only. Binds 127.0.0.1 only; every server runs in its own session and only that
session is signalled.
"""

import argparse
import json
import os
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
HOST = "127.0.0.1"


def log(msg):
    sys.stderr.write("[reload %s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


def free_port():
    s = socket.socket()
    s.bind((HOST, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def find_first(*paths):
    for p in paths:
        if p and os.path.exists(p):
            return os.path.abspath(p)
    return None


# ------------------------------------------------------------------ HTTP client


class Conn:
    """One HTTP/1.1 client connection over a raw socket (keep-alive or one-shot)."""

    def __init__(self, port, keepalive, timeout):
        self.port, self.keepalive, self.timeout = port, keepalive, timeout
        self.sock = None
        self.reconnects = 0
        self.got_bytes = False

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None

    def _open(self):
        self.sock = socket.create_connection((HOST, self.port), timeout=self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _exchange(self):
        hdr = "Connection: keep-alive" if self.keepalive else "Connection: close"
        self.sock.sendall(("GET / HTTP/1.1\r\nHost: bench\r\n%s\r\n\r\n" % hdr).encode())
        buf = b""
        self.got_bytes = False
        while b"\r\n\r\n" not in buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None if not buf else "truncated head"
            self.got_bytes = True
            buf += chunk
        head, _, body = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        try:
            status = int(lines[0].split()[1])
        except (IndexError, ValueError):
            return "bad status line %r" % lines[0][:60]
        length, close = None, False
        for line in lines[1:]:
            k, _, v = line.partition(":")
            k = k.strip().lower()
            if k == "content-length":
                length = int(v.strip())
            elif k == "connection" and v.strip().lower() == "close":
                close = True
        if length is None:
            # Read to EOF (no keep-alive possible).
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                body += chunk
            close = True
        else:
            while len(body) < length:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return "truncated body"
                body += chunk
        if close or not self.keepalive:
            self.close()
        return status

    def request(self):
        """Returns (ok, error-or-None)."""
        reused = self.sock is not None
        try:
            if self.sock is None:
                self._open()
            self.got_bytes = False
            try:
                r = self._exchange()
            except (ConnectionResetError, BrokenPipeError):
                if not reused or self.got_bytes:
                    raise
                r = None
            if r is None and reused:
                # The server closed the idle kept-alive connection before reading the request:
                # nothing was processed, so open a new connection and send it again.
                self.close()
                self.reconnects += 1
                self._open()
                r = self._exchange()
            if r is None:
                self.close()
                return False, "empty reply"
            if isinstance(r, str):
                self.close()
                return False, r
            if r != 200:
                return False, "HTTP %d" % r
            if not self.keepalive:
                self.close()
            return True, None
        except socket.timeout:
            self.close()
            return False, "timeout"
        except OSError as e:
            self.close()
            return False, type(e).__name__


def client(port, keepalive, stop, out, timeout):
    c = Conn(port, keepalive, timeout)
    while not stop.is_set():
        t0 = time.monotonic()
        ok, err = c.request()
        t1 = time.monotonic()
        out.append((t0, t1 - t0, ok, err))
    c.close()
    out.append(("reconnects", c.reconnects))


def run_load(port, clients, seconds, timeout, during=None):
    """Runs the load for `seconds`; `during(stop)` runs in the calling thread meanwhile."""
    stop = threading.Event()
    outs = [[] for _ in range(clients)]
    threads = [threading.Thread(target=client, args=(port, i % 2 == 0, stop, outs[i], timeout),
                                daemon=True) for i in range(clients)]
    t_start = time.monotonic()
    for t in threads:
        t.start()
    if during is not None:
        during(t_start, seconds)
    remaining = t_start + seconds - time.monotonic()
    if remaining > 0:
        time.sleep(remaining)
    stop.set()
    for t in threads:
        t.join(timeout + 5)
    samples, reconnects = [], 0
    for o in outs:
        for rec in o:
            if rec[0] == "reconnects":
                reconnects += rec[1]
            else:
                samples.append(rec)
    return samples, reconnects


def summarize(samples, reconnects):
    lat = sorted(d for (_, d, ok, _) in samples if ok)
    errs = {}
    for (_, _, ok, err) in samples:
        if not ok:
            errs[err] = errs.get(err, 0) + 1

    def pct(p):
        if not lat:
            return None
        return lat[min(len(lat) - 1, int(round(p / 100.0 * (len(lat) - 1))))] * 1000.0

    return {
        "requests": len(samples),
        "ok": len(lat),
        "failed": len(samples) - len(lat),
        "errors": errs,
        "reconnects": reconnects,
        "p50_ms": pct(50),
        "p99_ms": pct(99),
        "worst_ms": lat[-1] * 1000.0 if lat else None,
        "mean_ms": statistics.mean(lat) * 1000.0 if lat else None,
    }


# ------------------------------------------------------------------ servers


class Server:
    def __init__(self, name, argv, port, logdir, cwd):
        self.name, self.argv, self.port, self.cwd = name, argv, port, cwd
        self.logpath = os.path.join(logdir, "%s.log" % name)
        self.proc = None

    def start(self):
        with open(self.logpath, "wb") as f:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=f,
                                         stderr=subprocess.STDOUT, start_new_session=True,
                                         cwd=self.cwd)

    def wait_ready(self, timeout=30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("%s exited (rc=%s):\n%s" % (self.name, self.proc.returncode,
                                                               self.tail()))
            ok, _ = Conn(self.port, False, 1.0).request()
            if ok:
                return
            time.sleep(0.02)
        raise RuntimeError("%s not ready after %.0fs:\n%s" % (self.name, timeout, self.tail()))

    def tail(self, n=20):
        try:
            with open(self.logpath, "rb") as f:
                return "\n".join(f.read().decode("utf-8", "replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self):
        if self.proc is None:
            return
        pgid = self.proc.pid
        if self.proc.poll() is None:
            try:
                os.kill(pgid, signal.SIGINT)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            log("warning: %s (pid %d) did not exit" % (self.name, pgid))
        self.proc = None


def templates(a):
    t = {}
    if a.liege:
        t["liege"] = ("%s --http-socket 127.0.0.1:{port} --wsgi-file {app} --processes %d "
                      "--disable-logging" % (shlex.quote(a.liege), a.processes))
    if a.uwsgi:
        t["uwsgi"] = ("%s --http-socket 127.0.0.1:{port} --wsgi-file {app} --master --processes %d "
                      "--disable-logging" % (shlex.quote(a.uwsgi), a.processes))
    return t


def bench_server(name, template, a, logdir):
    port = free_port()
    argv = shlex.split(template.format(port=port, app=a.app))
    srv = Server(name, argv, port, logdir, os.path.dirname(os.path.abspath(a.app)))
    log("%s: %s" % (name, " ".join(argv)))
    srv.start()
    try:
        srv.wait_ready()
        log("%s: baseline, %d s without reloads" % (name, a.baseline))
        base = summarize(*run_load(port, a.clients, a.baseline, a.timeout))
        sent = []

        def reloader(t_start, seconds):
            gap = seconds / float(a.reloads + 1)
            for i in range(a.reloads):
                target = t_start + gap * (i + 1)
                time.sleep(max(0.0, target - time.monotonic()))
                if srv.proc.poll() is not None:
                    log("%s died during the reloads:\n%s" % (name, srv.tail()))
                    return
                os.kill(srv.proc.pid, signal.SIGHUP)
                sent.append(time.monotonic())

        log("%s: %d s with %d reloads (SIGHUP)" % (name, a.duration, a.reloads))
        rel = summarize(*run_load(port, a.clients, a.duration, a.timeout, during=reloader))
        rel["reloads_sent"] = len(sent)
        alive = srv.proc.poll() is None
        return {"server": name, "command": " ".join(argv), "baseline": base, "reloads": rel,
                "alive_after": alive}
    finally:
        srv.stop()


def fmt(v, f="%.1f"):
    return "–" if v is None else f % v


def report(results, a):
    L = []
    w = L.append
    w("## Reloads under load")
    w("")
    w("%d client threads (half keep-alive, half a new connection per request), %d workers, "
      "app `%s`; baseline %d s, then %d SIGHUPs over %d s." % (
          a.clients, a.processes, os.path.basename(a.app), a.baseline, a.reloads, a.duration))
    w("")
    w("| server | phase | requests | failed | reconnects | p50 ms | p99 ms | worst ms | p99 ÷ baseline |")
    w("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        if "error" in r:
            w("| %s | failed to run: %s | | | | | | | |" % (r["server"], r["error"].splitlines()[0]))
            continue
        b, x = r["baseline"], r["reloads"]
        for phase, s in (("no reload", b), ("%d reloads" % x["reloads_sent"], x)):
            ratio = (s["p99_ms"] / b["p99_ms"]) if (s["p99_ms"] and b["p99_ms"]) else None
            w("| %s | %s | %d | %d | %d | %s | %s | %s | %s |" % (
                r["server"], phase, s["requests"], s["failed"], s["reconnects"],
                fmt(s["p50_ms"], "%.2f"), fmt(s["p99_ms"], "%.2f"), fmt(s["worst_ms"]),
                fmt(ratio, "%.2f")))
    w("")
    for r in results:
        errs = r.get("reloads", {}).get("errors") or {}
        if errs:
            w("%s failures during reloads: %s" % (
                r["server"], ", ".join("%s × %d" % (k, v) for k, v in sorted(errs.items()))))
            w("")
    for r in results:
        if "command" in r:
            w("- `%s`" % r["command"])
    return "\n".join(L) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    bench = find_first(os.path.join(REPO, "..", "shared", "bench"),
                       os.path.join(REPO, "..", "..", "shared", "bench")) or ""
    venv = os.environ.get("PEERS_VENV") or find_first(
        os.path.join(REPO, "..", "peers-venv"), os.path.join(REPO, "..", "..", "peers-venv")) or ""
    ap.add_argument("--servers", default="liege,uwsgi")
    ap.add_argument("--liege", default=os.path.join(REPO, "target", "release", "liege"))
    ap.add_argument("--uwsgi", default=os.path.join(venv, "bin", "uwsgi") if venv else "uwsgi")
    ap.add_argument("--app", default=os.path.join(bench, "apps", "hello.py"))
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--baseline", type=int, default=10, help="seconds of load without reloads")
    ap.add_argument("--duration", type=int, default=20, help="seconds of load with reloads")
    ap.add_argument("--reloads", type=int, default=10)
    ap.add_argument("--timeout", type=float, default=5.0, help="per-request timeout, seconds")
    ap.add_argument("--out", help="also write the Markdown report here")
    ap.add_argument("--json", help="write the raw results here")
    ap.add_argument("--dry-run", action="store_true", help="print the server commands and exit")
    a = ap.parse_args(argv)

    wanted = [s for s in a.servers.split(",") if s]
    tpl = templates(a)
    chosen = []
    for name in wanted:
        if name not in tpl:
            sys.exit("unknown server %r" % name)
        exe = shlex.split(tpl[name])[0]
        if not (os.path.exists(exe) or shutil_which(exe)):
            log("skipping %s: %s not found" % (name, exe))
            continue
        chosen.append((name, tpl[name]))
    if not os.path.exists(a.app):
        sys.exit("app %s not found (--app)" % a.app)
    if a.dry_run:
        for name, t in chosen:
            print("%s: %s" % (name, t.format(port="{port}", app=a.app)))
        est = len(chosen) * (a.baseline + a.duration + 5)
        log("estimated %d s" % est)
        return 0
    if not chosen:
        sys.exit("no server to run")
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-reload-") as logdir:
        for name, t in chosen:
            try:
                results.append(bench_server(name, t, a, logdir))
            except RuntimeError as e:
                log(str(e))
                results.append({"server": name, "error": str(e)})
    md = report(results, a)
    sys.stdout.write(md)
    if a.out:
        with open(a.out, "w") as f:
            f.write(md)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


def shutil_which(exe):
    import shutil
    return shutil.which(exe)


if __name__ == "__main__":
    sys.exit(main())
