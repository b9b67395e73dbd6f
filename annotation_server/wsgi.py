import os

from django.core.wsgi import get_wsgi_application

from annotation_server.web.chunked import ChunkedRequestBody

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "annotation_server.settings")
# Chunked request bodies (Transfer-Encoding: chunked) reach Django: see web/chunked.py.
application = ChunkedRequestBody(get_wsgi_application())
