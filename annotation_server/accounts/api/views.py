from django.contrib.auth import get_user_model
from rest_framework import mixins, viewsets
from rest_framework.permissions import IsAdminUser

from annotation_server.accounts.api.serializers import MeSerializer, SiteSerializer
from annotation_server.accounts.models import Site


class SiteViewSet(viewsets.ReadOnlyModelViewSet):
    """Institutions. Names are visible to admins only; everyone else sees projects' codes."""

    queryset = Site.objects.all()
    serializer_class = SiteSerializer
    permission_classes = [IsAdminUser]


class MeViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """The signed-in person."""

    serializer_class = MeSerializer

    def get_queryset(self):
        # Not type(request.user): under session authentication that is Django's
        # lazy wrapper, and /me/ answered 500 to every browser.
        return get_user_model().objects.filter(pk=self.request.user.pk)
