"""Streaming responses whose chunks must reach the client as the app produces them
(Server-Sent Events, long polling): a first chunk, a 1.5 s pause, then the second."""
import time

FIRST = b"data: first\n\n"
SECOND = b"second"
PAUSE = 1.5
HEADERS = [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")]


def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/gen":
        # The generator form: each yielded item is one chunk.
        start_response("200 OK", HEADERS)

        def gen():
            yield FIRST
            time.sleep(PAUSE)
            yield SECOND

        return gen()
    if path == "/write":
        # The write() callable returned by start_response, then an empty iterable.
        write = start_response("200 OK", HEADERS)
        write(FIRST)
        time.sleep(PAUSE)
        write(SECOND)
        return []
    if path == "/ping":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "4")])
        return [b"pong"]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found"]
