"""Accounts and projects for the multi-host test and bench, made on the web host.

    python -m tests.multihost.seed        (with the web node's environment)

Prints one JSON line: the password and, per project, its slug. The people: a
dataset manager, two readers and an arbitrator of one site; the projects: "lung"
(CT, lung-nodule-ct, two blind reads per case, auto-accepted when they agree)
and "chest" (radiographs, chest-radiograph schema); "warmup" (CT) takes the
bench's warm-up imports.
"""

from __future__ import annotations

import json
import os


def main() -> None:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "annotation_server.settings")
    django.setup()
    from annotation_server.accounts.models import Role
    from annotation_server.projects.models import Project
    from annotation_server.projects.services import grant_role
    from tests import factories

    site = factories.SiteFactory(code="S01", name="Multi-host site")
    people = {
        name: factories.UserFactory(username=name, profile__site=site)
        for name in ("manager", "reader_a", "reader_b", "arbitrator")
    }
    lung = factories.ProjectFactory(slug="lung", name="Lung nodule CT")
    chest = factories.ProjectFactory(
        slug="chest",
        name="Chest radiographs",
        modality="CR",
        task_type=Project.TaskType.CLASSIFICATION_2D,
        label_schema=factories.schema("chest-radiograph"),
    )
    warmup = factories.ProjectFactory(slug="warmup", name="Warm-up imports")
    for project in (lung, chest, warmup):
        protocol = project.protocol
        protocol.readers_per_case = 2
        protocol.auto_accept_min_readers = 2
        protocol.review_phase = False
        protocol.full_clean()
        protocol.save()
        grant_role(project, people["reader_a"], Role.READER)
        grant_role(project, people["reader_b"], Role.READER)
        grant_role(project, people["arbitrator"], Role.ARBITRATOR)
        grant_role(project, people["manager"], Role.MANAGER)
    slugs = [lung.slug, chest.slug, warmup.slug]
    print(json.dumps({"password": factories.PASSWORD, "projects": slugs}))


if __name__ == "__main__":
    main()
