from rest_framework import serializers

from annotation_server.jobs.models import Job


class JobSerializer(serializers.ModelSerializer):
    class Meta:
        model = Job
        fields = [
            "id",
            "kind",
            "state",
            "progress",
            "params",
            "result",
            "log",
            "error",
            "project",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields
