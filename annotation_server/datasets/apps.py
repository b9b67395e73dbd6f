from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _sqlite_triggers(using="default", **kwargs):
    from django.db import connections

    from annotation_server.datasets.guards import install_sqlite_triggers

    install_sqlite_triggers(connections[using])


class DatasetsConfig(AppConfig):
    name = "annotation_server.datasets"
    label = "datasets"

    def ready(self):
        from annotation_server.datasets import guards

        guards.connect()
        # SQLite loses a table's triggers whenever a migration rebuilds the table:
        # put them back after every migrate (PostgreSQL keeps them: migration 0004).
        post_migrate.connect(_sqlite_triggers, sender=self, dispatch_uid="datasets.sqlite_triggers")
