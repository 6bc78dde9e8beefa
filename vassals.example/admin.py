"""A tiny admin page: which process answered, since when, and the Python it runs."""

import html
import os
import sys
import time

STARTED = time.time()


def application(environ, start_response):
    rows = [
        ("worker pid", str(os.getpid())),
        ("worker up for", "%.1f s" % (time.time() - STARTED)),
        ("python", sys.version.split()[0]),
        ("server", environ.get("SERVER_SOFTWARE", "")),
        ("your address", environ.get("REMOTE_ADDR", "")),
    ]
    cells = "".join(
        "<tr><th>%s</th><td>%s</td></tr>" % (html.escape(k), html.escape(v)) for k, v in rows
    )
    body = (
        "<!doctype html><title>admin</title><h1>admin</h1><table>%s</table>\n" % cells
    ).encode()
    start_response(
        "200 OK",
        [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body)))],
    )
    return [body]
