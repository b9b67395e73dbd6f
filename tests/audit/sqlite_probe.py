"""Run against a migrated SQLite file (DATABASE_URL=sqlite:////...) by
test_audit_sqlite.py in a subprocess; prints one JSON line.

    python -m tests.audit.sqlite_probe concurrent THREADS EACH
    python -m tests.audit.sqlite_probe guard
"""

from __future__ import annotations

import json
import sys
import threading
import time

import django


def concurrent(threads: int, each: int) -> dict:
    from django.db import connections

    from annotation_server.audit import services
    from annotation_server.audit.models import AuditEvent

    barrier = threading.Barrier(threads)
    errors: list[str] = []

    def work(i: int) -> None:
        try:
            barrier.wait()
            for n in range(each):
                services.record("test.concurrent", data={"thread": i, "n": n})
        except Exception as exc:  # reported, not raised: the test counts them
            errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            connections.close_all()

    started = time.monotonic()
    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    seconds = time.monotonic() - started
    report = services.verify_chain()
    result = {
        "errors": errors,
        "events": AuditEvent.objects.filter(action="test.concurrent").count(),
        "chain_ok": report.ok,
        "checked": report.checked,
        "seconds": round(seconds, 2),
    }
    connections.close_all()
    return result


def guard() -> dict:
    from django.db import connection, connections, transaction

    from annotation_server.audit import services
    from annotation_server.audit.models import AuditEvent

    events = [services.record("test.guard", data={"i": i}) for i in range(3)]
    attempts = {
        "queryset_update": lambda: AuditEvent.objects.filter(pk=events[1].pk).update(action="x"),
        "queryset_delete": lambda: AuditEvent.objects.filter(pk=events[2].pk).delete(),
        "sql_update": lambda: connection.cursor().execute(
            "UPDATE audit_auditevent SET data = '{}' WHERE id = %s", [events[0].pk]
        ),
        "sql_delete": lambda: connection.cursor().execute("DELETE FROM audit_auditevent"),
    }
    outcome = {}
    for name, attempt in attempts.items():
        try:
            with transaction.atomic():
                attempt()
            outcome[name] = "done"
        except Exception as exc:
            outcome[name] = f"{type(exc).__name__}: {exc}"
    rows = list(AuditEvent.objects.order_by("id").values_list("action", flat=True))
    result = {"outcome": outcome, "rows": rows, "chain_ok": services.verify_chain().ok}
    connections.close_all()
    return result


def main(argv: list[str]) -> None:
    django.setup()
    result = concurrent(int(argv[1]), int(argv[2])) if argv[0] == "concurrent" else guard()
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
