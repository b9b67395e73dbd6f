from annotation_server.reading.api.qualification import (
    QualificationAttemptViewSet,
    QualificationTestViewSet,
)
from annotation_server.reading.api.views import FindingViewSet, ReadingTaskViewSet

ROUTES = [
    ("reading-tasks", ReadingTaskViewSet, "readingtask"),
    ("findings", FindingViewSet, "finding"),
    ("qualification-tests", QualificationTestViewSet, "qualificationtest"),
    ("qualification-attempts", QualificationAttemptViewSet, "qualificationattempt"),
]
