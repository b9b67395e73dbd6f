from annotation_server.datasets.api.views import DatasetVersionViewSet

ROUTES = [
    ("dataset-versions", DatasetVersionViewSet, "datasetversion"),
]
