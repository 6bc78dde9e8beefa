# If this module is ever imported, a uwsgi peer managed to load code (uWSGI's dynamic apps).
import os

open(os.environ["CLOSE_LOG"], "a").write("DYNAMIC APP LOADED\n")


def application(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"dynamic"]
