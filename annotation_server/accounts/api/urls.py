from annotation_server.accounts.api import schema  # noqa: F401  (registers the OpenAPI extensions)
from annotation_server.accounts.api.views import MeViewSet, SiteViewSet

ROUTES = [
    ("me", MeViewSet, "me"),
    ("sites", SiteViewSet, "site"),
]
