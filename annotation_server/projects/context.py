"""Template context of the projects app: whether the navigation shows the manager's
console ("Manage projects"). Lazy: the query runs only when a page renders it."""

from django.utils.functional import SimpleLazyObject


def console_nav(request):
    def shows() -> bool:
        from annotation_server.projects.permissions import MANAGE, can_create_projects, project_ids

        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return False
        return can_create_projects(user) or bool(project_ids(user, MANAGE))

    return {"shows_project_console": SimpleLazyObject(shows)}
