from annotation_server.jobs.api.views import JobViewSet

ROUTES = [("jobs", JobViewSet, "job")]
