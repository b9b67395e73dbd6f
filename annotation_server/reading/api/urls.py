from annotation_server.reading.api.views import FindingViewSet, ReadingTaskViewSet

ROUTES = [
    ("reading-tasks", ReadingTaskViewSet, "readingtask"),
    ("findings", FindingViewSet, "finding"),
]
