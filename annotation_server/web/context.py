from django.conf import settings

from annotation_server import __version__


def refset(request):
    return {
        "refset_version": __version__,
        "embedded_mode": settings.EMBEDDED_DATABASE or settings.IN_PROCESS_JOBS,
        "demo_mode": settings.DEMO,
    }
