# The app the master tests run. Tests copy it into their sandbox as app.py and rewrite the
# VERSION line (or break the file) to observe reloads.
import os
import time

VERSION = "v1"


def application(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    query = environ.get("QUERY_STRING", "")
    if path == "/slow":
        # Tell the test the request is in flight, then take our time.
        open(f"slow-started-{os.getpid()}", "w").close()
        time.sleep(float(query or 2))
        body = f"slow done {VERSION}"
    elif path == "/env":
        body = os.environ.get(query, "<unset>")
    elif path == "/id":
        body = f"uid={os.getuid()} gid={os.getgid()} groups={sorted(os.getgroups())}"
    else:
        body = f"{VERSION} pid={os.getpid()}"
    data = body.encode()
    start_response(
        "200 OK",
        [("Content-Type", "text/plain"), ("Content-Length", str(len(data)))],
    )
    return [data]
