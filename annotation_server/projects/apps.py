from django.apps import AppConfig


class ProjectsConfig(AppConfig):
    name = "annotation_server.projects"
    label = "projects"
