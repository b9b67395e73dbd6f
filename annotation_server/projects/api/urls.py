from annotation_server.projects.api.console import LabelSchemaViewSet
from annotation_server.projects.api.views import CaseViewSet, ProjectViewSet

ROUTES = [
    ("projects", ProjectViewSet, "project"),
    ("cases", CaseViewSet, "case"),
    ("label-schemas", LabelSchemaViewSet, "labelschema"),
]
