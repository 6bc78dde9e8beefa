# A tiny WSGI app for the emperor tests: answers with $MSG (set by `env = MSG=...` in the
# vassal file, so an edit is visible on the wire) and the worker's pid and uid.
import os


def application(environ, start_response):
    body = ("%s pid=%d uid=%d\n" % (os.environ.get("MSG", "none"), os.getpid(), os.getuid())).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
