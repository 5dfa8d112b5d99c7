"""A small WSGI application that keeps notes in memory: POST /notes adds one (the request
body), GET /notes lists them, GET /health answers ok. Served by gunicorn."""

import json
import os
import threading
import time

_lock = threading.Lock()
_notes = []
_started = time.time()


def app(environ, start_response):
    method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "/")
    if path == "/health":
        return _reply(start_response, "200 OK", {"ok": True})
    if path == "/notes" and method == "POST":
        size = int(environ.get("CONTENT_LENGTH") or 0)
        text = environ["wsgi.input"].read(size).decode()
        with _lock:
            _notes.append(text)
            number = len(_notes)
        return _reply(start_response, "201 Created", {"id": number})
    if path == "/notes" and method == "GET":
        with _lock:
            notes = list(_notes)
        return _reply(start_response, "200 OK", {"notes": notes, "pid": os.getpid(), "started": _started})
    return _reply(start_response, "404 Not Found", {"error": "no such resource"})


def _reply(start_response, status, obj):
    body = json.dumps(obj).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]
