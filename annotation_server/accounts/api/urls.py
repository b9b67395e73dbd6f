from annotation_server.accounts.api.views import MeViewSet, SiteViewSet

ROUTES = [
    ("me", MeViewSet, "me"),
    ("sites", SiteViewSet, "site"),
]
