"""System checks: say clearly when RefSet runs in its embedded demo mode."""

from django.conf import settings
from django.core.checks import Info, Tags, Warning, register


@register()
def embedded_mode(app_configs, **kwargs):
    messages = []
    if settings.EMBEDDED_DATABASE:
        messages.append(
            Info(
                "Embedded database: DATABASE_URL is unset, so RefSet uses SQLite at "
                f"{settings.DATABASES['default']['NAME']} (demo only).",
                hint="Set DATABASE_URL=postgresql://... for real use.",
                id="refset.I001",
            )
        )
    if settings.IN_PROCESS_JOBS:
        messages.append(
            Info(
                "In-process jobs: CELERY_BROKER_URL is unset, so jobs run inside the web process "
                "(demo only).",
                hint="Set CELERY_BROKER_URL=redis://... and run a Celery worker.",
                id="refset.I002",
            )
        )
    return messages


@register(Tags.security, deploy=True)
def demo_server(app_configs, **kwargs):
    """`check --deploy` under REFSET_DEMO=1 (what `manage.py serve` gives the demo's
    gunicorn) says it is not a deployment: HTTPS settings off, demo keys allowed."""
    if not settings.DEMO:
        return []
    return [
        Warning(
            "REFSET_DEMO=1: the demo's server mode (plain HTTP, no HSTS, demo keys). "
            "Not a production configuration.",
            hint="Unset REFSET_DEMO and set DJANGO_DEBUG=0 with real keys for production.",
            id="refset.W001",
        )
    ]
