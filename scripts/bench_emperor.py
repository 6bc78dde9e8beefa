#!/usr/bin/env python3
"""The emperor at scale: liege's against uWSGI's (docs/performance.md, section 3).

For each emperor: write --vassals vassal files (each a tiny app with 1 worker on its own
http-socket port on 127.0.0.1) into a fresh directory, start `EMPEROR --emperor DIR`, and
measure:

- start -> every vassal answering (s), and the emperor's own RSS once they all answer;
- touch -> reload begun (ms): `touch` a random vassal file (new ns mtime), then poll that
  vassal's master every millisecond until its set of children changes (liege starts a new
  worker first; uWSGI stops the old one first): --touches times, p50/p99/max;
- touch -> new worker serving (ms): until the app (which answers its pid) answers from a new pid;
- delete -> port refused (ms): unlink a vassal file, poll until connecting is refused.

Prints a Markdown table; --json writes the raw samples. Standard library only; binds 127.0.0.1
only; each emperor runs in its own session, and only that session and its descendants are
signalled.
"""

import argparse
import json
import os
import random
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
HOST = "127.0.0.1"

PID_APP = '''import os

def application(environ, start_response):
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
'''


def log(msg):
    sys.stderr.write("[emperor-bench %s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


def free_ports(n):
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind((HOST, 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def get_pid(port, timeout=1.0):
    """The pid the app answers with, or None (refused, reset, not 200...)."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        if not head.split(b" ", 2)[1:2] == [b"200"]:
            return None
        return int(body.strip())
    except (OSError, ValueError, IndexError):
        return None


def refused(port):
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return False
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


def stat_fields(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except OSError:
        return None
    return data[data.rfind(")") + 2:].split()


def ppid_of(pid):
    st = stat_fields(pid)
    return int(st[1]) if st else None


def children(pid):
    out = set()
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                out.update(int(x) for x in f.read().split())
    except OSError:
        return None
    return frozenset(out)


def rss_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def session_members(sid):
    """Pids whose session or process group is `sid`, plus their descendants."""
    stats = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            st = stat_fields(int(d))
            if st:
                stats[int(d)] = st
    out = {p for p, st in stats.items() if int(st[3]) == sid or int(st[2]) == sid or p == sid}
    changed = True
    while changed:
        changed = False
        for p, st in stats.items():
            if p not in out and int(st[1]) in out:
                out.add(p)
                changed = True
    return {p for p in out if stats[p][0] != "Z"}


def pct(vals, p):
    if not vals:
        return None
    v = sorted(vals)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


class Emperor:
    def __init__(self, name, argv, workdir):
        self.name, self.argv, self.workdir = name, argv, workdir
        self.logpath = os.path.join(workdir, "%s.log" % name)
        self.proc = None

    def start(self):
        with open(self.logpath, "wb") as f:
            self.proc = subprocess.Popen(self.argv, cwd=self.workdir, stdin=subprocess.DEVNULL,
                                         stdout=f, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        return time.monotonic()

    def tail(self, n=20):
        try:
            with open(self.logpath, "rb") as f:
                return "\n".join(f.read().decode("utf-8", "replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self):
        if self.proc is None:
            return
        leader = self.proc.pid
        members = session_members(leader)
        if self.proc.poll() is None:
            os.kill(leader, signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and session_members(leader) - {leader}:
            time.sleep(0.1)
        for p in members | session_members(leader):
            try:
                os.kill(p, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            log("warning: %s (pid %d) did not exit" % (self.name, leader))
        self.proc = None


def write_vassals(d, ports, app, extra):
    os.makedirs(d)
    paths = []
    for i, port in enumerate(ports):
        p = os.path.join(d, "v%03d.ini" % i)
        with open(p, "w") as f:
            f.write("[uwsgi]\nhttp-socket = 127.0.0.1:%d\nwsgi-file = %s\nprocesses = 1\n"
                    "disable-logging = true\n%s" % (port, app, extra))
        paths.append(p)
    return paths


def bench_one(name, exe, a, rng):
    work = tempfile.mkdtemp(prefix="bench-emperor-%s-" % name)
    try:
        app = os.path.join(work, "pid.py")
        with open(app, "w") as f:
            f.write(PID_APP)
        ports = free_ports(a.vassals)
        paths = write_vassals(os.path.join(work, "vassals"), ports, app,
                              "master = true\n" if name == "uwsgi" else "")
        argv = [exe, "--emperor", os.path.join(work, "vassals")]
        em = Emperor(name, argv, work)
        log("%s: %s (%d vassals)" % (name, " ".join(shlex.quote(x) for x in argv), a.vassals))
        t0 = em.start()
        res = {"server": name, "command": " ".join(argv), "vassals": a.vassals}
        try:
            pending = set(range(a.vassals))
            deadline = t0 + a.start_timeout
            while pending and time.monotonic() < deadline:
                if em.proc.poll() is not None:
                    raise RuntimeError("%s exited (rc=%s):\n%s" % (name, em.proc.returncode,
                                                                   em.tail()))
                for i in list(pending):
                    if get_pid(ports[i], timeout=0.5) is not None:
                        pending.discard(i)
                if pending:
                    time.sleep(0.01)
            if pending:
                raise RuntimeError("%d of %d vassals not answering after %ds:\n%s" % (
                    len(pending), a.vassals, a.start_timeout, em.tail()))
            res["all_ready_s"] = time.monotonic() - t0
            time.sleep(1.0)
            res["emperor_rss_mib"] = rss_kib(em.proc.pid) / 1024.0
            res["tree_rss_mib"] = sum(rss_kib(p) for p in session_members(em.proc.pid)) / 1024.0
            log("%s: all %d answering after %.2fs; emperor RSS %.1f MiB" % (
                name, a.vassals, res["all_ready_s"], res["emperor_rss_mib"]))

            begun, served, misses = [], [], 0
            for n in range(a.touches):
                i = rng.randrange(a.vassals)
                old_pid = get_pid(ports[i])
                master = ppid_of(old_pid) if old_pid else None
                before = children(master) if master else None
                if before is None:
                    misses += 1
                    continue
                t = time.monotonic()
                os.utime(paths[i])  # a touch: new mtime, same content
                t_begin = t_served = None
                limit = t + a.touch_timeout
                while time.monotonic() < limit:
                    now_children = children(master)
                    if now_children != before:
                        t_begin = time.monotonic()
                        break
                    time.sleep(0.001)
                while t_begin is not None and time.monotonic() < limit:
                    p = get_pid(ports[i], timeout=0.5)
                    if p is not None and p != old_pid:
                        t_served = time.monotonic()
                        break
                    time.sleep(0.002)
                if t_begin is None:
                    misses += 1
                    continue
                begun.append((t_begin - t) * 1000.0)
                if t_served is not None:
                    served.append((t_served - t) * 1000.0)
                time.sleep(a.pause)
            res["touch_begun_ms"], res["touch_served_ms"], res["touch_misses"] = begun, served, misses
            log("%s: touch -> reload begun p50 %s ms, p99 %s ms (%d missed)" % (
                name, fmt(pct(begun, 50)), fmt(pct(begun, 99)), misses))

            gone = []
            victims = rng.sample(range(a.vassals), min(a.deletes, a.vassals))
            for i in victims:
                t = time.monotonic()
                os.unlink(paths[i])
                limit = t + a.touch_timeout
                while time.monotonic() < limit:
                    if refused(ports[i]):
                        gone.append((time.monotonic() - t) * 1000.0)
                        break
                    time.sleep(0.001)
            res["delete_refused_ms"] = gone
            res["delete_misses"] = len(victims) - len(gone)
        finally:
            em.stop()
        return res
    finally:
        shutil.rmtree(work, ignore_errors=True)


def fmt(v, f="%.1f"):
    return "–" if v is None else f % v


def report(results, a):
    L = []
    w = L.append
    w("## The emperor with %d vassals" % a.vassals)
    w("")
    w("Each vassal: the pid app, 1 worker, its own `http-socket` on 127.0.0.1. %d touches, %d "
      "deletes." % (a.touches, a.deletes))
    w("")
    names = [r["server"] for r in results]
    w("| | " + " | ".join(names) + " |")
    w("|---|" + "---|" * len(names))

    def row(label, fn):
        cells = []
        for r in results:
            if "error" in r:
                cells.append("failed: " + r["error"].splitlines()[0][:60])
            else:
                cells.append(fn(r))
        w("| %s | %s |" % (label, " | ".join(cells)))

    def trio(key):
        return lambda r: "%s / %s / %s" % (fmt(pct(r[key], 50)), fmt(pct(r[key], 99)),
                                           fmt(max(r[key]) if r[key] else None))

    row("emperor RSS (MiB)", lambda r: fmt(r["emperor_rss_mib"]))
    row("whole tree RSS (MiB)", lambda r: fmt(r["tree_rss_mib"], "%.0f"))
    row("start → all answering (s)", lambda r: fmt(r["all_ready_s"], "%.2f"))
    row("touch → reload begun p50 / p99 / max (ms)", trio("touch_begun_ms"))
    row("touch → new worker serving p50 / p99 / max (ms)", trio("touch_served_ms"))
    row("touches not seen within %ds" % a.touch_timeout, lambda r: str(r["touch_misses"]))
    row("delete → port refused p50 / p99 / max (ms)", trio("delete_refused_ms"))
    row("deletes not seen within %ds" % a.touch_timeout, lambda r: str(r["delete_misses"]))
    w("")
    for r in results:
        if "command" in r:
            w("- %s: `%s`" % (r["server"], r["command"]))
    return "\n".join(L) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    venv = os.environ.get("PEERS_VENV") or next(
        (os.path.abspath(p) for p in (os.path.join(REPO, "..", "peers-venv"),
                     os.path.join(REPO, "..", "..", "peers-venv")) if os.path.isdir(p)), "")
    ap.add_argument("--servers", default="liege,uwsgi")
    ap.add_argument("--liege", default=os.path.join(REPO, "target", "release", "liege"))
    ap.add_argument("--uwsgi", default=os.path.join(venv, "bin", "uwsgi") if venv else "uwsgi")
    ap.add_argument("--vassals", type=int, default=200)
    ap.add_argument("--touches", type=int, default=50)
    ap.add_argument("--deletes", type=int, default=10)
    ap.add_argument("--pause", type=float, default=0.2, help="seconds between touches")
    ap.add_argument("--start-timeout", type=int, default=180)
    ap.add_argument("--touch-timeout", type=int, default=15)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", help="also write the Markdown report here")
    ap.add_argument("--json", help="write the raw samples here")
    ap.add_argument("--dry-run", action="store_true", help="print what would run and exit")
    a = ap.parse_args(argv)

    exes = {"liege": a.liege, "uwsgi": a.uwsgi}
    chosen = []
    for name in [s for s in a.servers.split(",") if s]:
        if name not in exes:
            sys.exit("unknown server %r (liege, uwsgi)" % name)
        exe = exes[name]
        if not (os.path.exists(exe) or shutil.which(exe)):
            log("skipping %s: %s not found" % (name, exe))
            continue
        chosen.append((name, exe))
    if a.dry_run:
        for name, exe in chosen:
            print("%s: %s --emperor <tmp>/vassals   (%d x [uwsgi] http-socket = 127.0.0.1:<port>, "
                  "wsgi-file = <tmp>/pid.py, processes = 1)" % (name, exe, a.vassals))
        return 0
    if not chosen:
        sys.exit("no emperor to run")
    rng = random.Random(a.seed)
    results = []
    for name, exe in chosen:
        try:
            results.append(bench_one(name, exe, a, rng))
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


if __name__ == "__main__":
    sys.exit(main())
