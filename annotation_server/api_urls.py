"""The REST API root (/api/v1/): each app lists its routes; this router joins them."""

from rest_framework.routers import DefaultRouter

from annotation_server.accounts.api.urls import ROUTES as ACCOUNT_ROUTES
from annotation_server.adjudication.api.urls import ROUTES as ADJUDICATION_ROUTES
from annotation_server.datasets.api.urls import ROUTES as DATASET_ROUTES
from annotation_server.imaging.api.urls import ROUTES as IMAGING_ROUTES
from annotation_server.jobs.api.urls import ROUTES as JOB_ROUTES
from annotation_server.outbox.api import ROUTES as OUTBOX_ROUTES
from annotation_server.projects.api.urls import ROUTES as PROJECT_ROUTES
from annotation_server.qualification.api.urls import ROUTES as QUALIFICATION_ROUTES
from annotation_server.reading.api.urls import ROUTES as READING_ROUTES


class RefSetRouter(DefaultRouter):
    include_format_suffixes = False


router = RefSetRouter()
ALL_ROUTES = (
    ACCOUNT_ROUTES
    + PROJECT_ROUTES
    + IMAGING_ROUTES
    + READING_ROUTES
    + QUALIFICATION_ROUTES
    + ADJUDICATION_ROUTES
    + JOB_ROUTES
    + DATASET_ROUTES
    + OUTBOX_ROUTES
)
for prefix, viewset, basename in ALL_ROUTES:
    router.register(prefix, viewset, basename=basename)
