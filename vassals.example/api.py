"""A small JSON API: GET describes the request, POST returns the body's size and SHA-256.

Written for any WSGI server; behind nginx it is reached through `uwsgi_pass`.
"""

import hashlib
import json
import sys


def application(environ, start_response):
    method = environ["REQUEST_METHOD"]
    if method == "POST":
        digest = hashlib.sha256()
        size = 0
        stream = environ["wsgi.input"]
        while True:
            chunk = stream.read(65536)
            if not chunk:
                break
            size += len(chunk)
            digest.update(chunk)
        payload = {"size": size, "sha256": digest.hexdigest()}
    elif method in ("GET", "HEAD"):
        payload = {
            "method": method,
            "path": environ.get("PATH_INFO", ""),
            "query": environ.get("QUERY_STRING", ""),
            "scheme": environ["wsgi.url_scheme"],
            "remote_addr": environ.get("REMOTE_ADDR", ""),
            "server": environ.get("SERVER_SOFTWARE", ""),
            "python": sys.version.split()[0],
        }
    else:
        body = b"method not allowed\n"
        start_response(
            "405 Method Not Allowed",
            [("Content-Type", "text/plain"), ("Allow", "GET, HEAD, POST"),
             ("Content-Length", str(len(body)))],
        )
        return [body]
    body = (json.dumps(payload, sort_keys=True) + "\n").encode()
    start_response(
        "200 OK",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
    )
    return [body]
