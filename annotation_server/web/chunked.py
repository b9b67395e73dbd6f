"""WSGI middleware: chunked request bodies reach Django.

Django reads a request body only as far as CONTENT_LENGTH; a request sent with
`Transfer-Encoding: chunked` has none, so Django would see an empty body (a form
without its CSRF token, an upload without its files). Servers that de-chunk the
input and mark its end (gunicorn sets `wsgi.input_terminated`) let us read it: the
body is spooled (memory up to FILE_UPLOAD_MAX_MEMORY_SIZE, then a temporary file)
and CONTENT_LENGTH set, so the rest of Django parses it as usual. Other servers
(runserver) are left alone.

Imports no app: annotation_server.wsgi wraps the application with it.
"""

from __future__ import annotations

import tempfile

from django.conf import settings

_CHUNK = 64 * 1024


class ChunkedRequestBody:
    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        if not (
            "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
            and not environ.get("CONTENT_LENGTH")
            and environ.get("wsgi.input_terminated")
        ):
            return self.app(environ, start_response)
        body = tempfile.SpooledTemporaryFile(max_size=settings.FILE_UPLOAD_MAX_MEMORY_SIZE)  # noqa: SIM115 (closed with the response)
        size = 0
        stream = environ["wsgi.input"]
        while chunk := stream.read(_CHUNK):
            body.write(chunk)
            size += len(chunk)
        body.seek(0)
        environ = {**environ, "wsgi.input": body, "CONTENT_LENGTH": str(size)}
        return _ClosingResponse(self.app(environ, start_response), body.close)


class _ClosingResponse:
    """The application's response iterable that also closes the spooled body."""

    def __init__(self, response, close_body):
        self.response = response
        self.close_body = close_body

    def __iter__(self):
        return iter(self.response)

    def close(self):
        try:
            if hasattr(self.response, "close"):
                self.response.close()
        finally:
            self.close_body()
