from django.contrib.auth import get_user_model
from rest_framework import serializers

from annotation_server.accounts.models import Site


class SiteSerializer(serializers.ModelSerializer):
    class Meta:
        model = Site
        fields = ["id", "code", "name", "site_type", "region"]


class MeSerializer(serializers.ModelSerializer):
    pseudonym = serializers.CharField(source="profile.pseudonym", default=None)
    site = serializers.CharField(source="profile.site.code", default=None)
    title = serializers.CharField(source="profile.title", default=None)
    years_experience = serializers.IntegerField(source="profile.years_experience", default=None)

    class Meta:
        model = get_user_model()
        fields = ["id", "username", "pseudonym", "site", "title", "years_experience", "is_staff"]
