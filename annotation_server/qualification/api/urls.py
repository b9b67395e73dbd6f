from annotation_server.qualification.api.views import (
    QualificationAttemptViewSet,
    QualificationTestViewSet,
)

ROUTES = [
    ("qualification-tests", QualificationTestViewSet, "qualificationtest"),
    ("qualification-attempts", QualificationAttemptViewSet, "qualificationattempt"),
]
