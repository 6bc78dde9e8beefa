"""One app with a route per WSGI behaviour the worker tests check on the wire."""
import hashlib
import json
import os
import sys
import threading
import time

CLOSE_LOG = os.environ.get("CLOSE_LOG")


def log_close(what):
    if CLOSE_LOG:
        with open(CLOSE_LOG, "a") as f:
            f.write(what + "\n")


class Closing:
    """An iterable whose close() is recorded."""

    def __init__(self, name, items, fail_at=None):
        self.name = name
        self.items = items
        self.fail_at = fail_at

    def __iter__(self):
        for i, item in enumerate(self.items):
            if self.fail_at is not None and i == self.fail_at:
                raise RuntimeError("boom mid-iteration")
            yield item

    def close(self):
        log_close("closed " + self.name)


def env_json(environ):
    out = {}
    for k, v in environ.items():
        if isinstance(v, str):
            out[k] = v
        elif isinstance(v, bytes):
            out[k] = "bytes:" + v.decode("latin-1")
        elif isinstance(v, (bool, int, tuple)):
            out[k] = repr(v)
        else:
            out[k] = "<" + type(v).__name__ + ">"
    return json.dumps(out, sort_keys=True).encode()


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/env":
        body = env_json(environ)
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]
    if path == "/echo":
        data = environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return [data]
    if path == "/sha256":
        h = hashlib.sha256()
        n = 0
        inp = environ["wsgi.input"]
        while True:
            chunk = inp.read(65536)
            if not chunk:
                break
            n += len(chunk)
            h.update(chunk)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [("%d %s" % (n, h.hexdigest())).encode()]
    if path == "/lines":
        inp = environ["wsgi.input"]
        first = inp.readline()
        second = inp.readline(3)
        rest = inp.readlines()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [repr([first, second, rest]).encode()]
    if path == "/iterlines":
        lines = [l for l in environ["wsgi.input"]]
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [repr(lines).encode()]
    if path == "/write":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written ")
        write(b"then ")
        return [b"returned"]
    if path == "/gen":
        def gen():
            yield b"a"
            yield b""
            yield b"b"
            yield b"c"
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Closing("gen", gen())
    if path == "/gen-late-start":
        def gen():
            start_response("201 Created", [("Content-Type", "text/plain"), ("X-Late", "yes")])
            yield b"late"
        return gen()
    if path == "/raise":
        raise ValueError("app exploded before start_response")
    if path == "/raise-mid":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Closing("raise-mid", [b"first-part ", b"second", b"third"], fail_at=2)
    if path == "/str":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Closing("str", ["not bytes"])
    if path == "/exc-before":
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            raise KeyError("oops")
        except KeyError:
            start_response("500 Oops", [("Content-Type", "text/plain")], sys.exc_info())
        return [b"recovered"]
    if path == "/exc-after":
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"partial")
        try:
            raise KeyError("late")
        except KeyError:
            try:
                start_response("500 Oops", [("Content-Type", "text/plain")], sys.exc_info())
            except KeyError:
                log_close("reraised KeyError")
                raise
        return [b"never"]
    if path == "/twice":
        start_response("200 OK", [])
        try:
            start_response("200 OK", [])
        except Exception as e:
            msg = type(e).__name__
        return [msg.encode()]
    if path == "/inject":
        start_response("200 OK", [("X-Bad", "a\r\nSet-Cookie: evil=1")])
        return [b"should not be sent"]
    if path == "/bad-status":
        start_response("20 OK", [])
        return [b"x"]
    if path == "/reason":
        start_response("299 Custom Thing", [("Content-Type", "text/plain")])
        return [b"custom"]
    if path == "/file":
        f = open(environ["QUERY_STRING"] or __file__, "rb")
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](f, 4096)
    if path == "/filelike":
        import io
        start_response("200 OK", [("Content-Type", "text/plain")])
        return environ["wsgi.file_wrapper"](io.BytesIO(b"from a BytesIO"), 4)
    if path == "/sleep":
        t = float(environ["QUERY_STRING"] or "0.5")
        log_close("sleep started")
        time.sleep(t)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"slept"]
    if path == "/thread":
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [threading.current_thread().name.encode()]
    if path == "/big":
        n = int(environ["QUERY_STRING"] or "1000000")
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        def gen():
            left = n
            while left > 0:
                k = min(left, 65536)
                yield b"x" * k
                left -= k
        return gen()
    if path == "/close-disconnect":
        def gen():
            try:
                for _ in range(100000):
                    yield b"y" * 65536
            finally:
                pass
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return Closing("disconnect", gen())
    if path == "/nostart":
        return [b"no start_response"]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found: " + path.encode("latin-1")]
