from annotation_server.adjudication.api.views import (
    ArbitrationTaskViewSet,
    CaseAdjudicationViewSet,
    ClusterViewSet,
    ReferenceFindingViewSet,
)

ROUTES = [
    ("arbitration-tasks", ArbitrationTaskViewSet, "arbitrationtask"),
    ("clusters", ClusterViewSet, "cluster"),
    ("reference-findings", ReferenceFindingViewSet, "referencefinding"),
    ("adjudication", CaseAdjudicationViewSet, "adjudication"),
]
