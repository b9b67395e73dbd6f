from annotation_server.imaging.api.views import InstanceViewSet, SeriesViewSet, StudyViewSet

ROUTES = [
    ("studies", StudyViewSet, "study"),
    ("series", SeriesViewSet, "series"),
    ("instances", InstanceViewSet, "instance"),
]
