"""Dates and times: one instant shows in the server's time zone
(settings.TIME_ZONE) in the page language's format (annotation_server/formats),
never in UTC and never in a pattern a template spelled itself."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from unittest import mock

import pytest
from django.conf import settings
from django.test import Client
from django.utils import formats, translation

from annotation_server.datasets import services
from tests import factories
from tests.datasets.conftest import make_case

INSTANT = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)  # 20:30 in Shanghai, 07:30 in New York
TEMPLATES = Path(settings.BASE_DIR) / "frontend_templates" / "templates"
# Owned by other work in progress; they format no dates themselves today.
NOT_OURS = {"reading/workstation.html", "adjudication/arbitrate.html"}


@pytest.fixture
def readers(reader_a, reader_b, reader_c):
    return [reader_a, reader_b, reader_c]


@pytest.fixture
def frozen(project, readers, manager):
    p = project.protocol  # as tests/datasets/conftest.py: three agreeing reads settle
    p.auto_accept_min_readers, p.drop_below_readers = 3, 1
    p.match_rule, p.match_threshold = "centre_distance", 5.0
    p.save()
    for i in range(2):
        make_case(project, readers, f"D{i:02d}", patient=f"PD{i:02d}")
    draft = services.create_draft(project, version="1.0.0", by=manager, all_adjudicated=True)
    with mock.patch("django.utils.timezone.now", return_value=INSTANT):
        return services.freeze(draft, by=manager)


def _pages(project, manager, language: str) -> tuple[str, str]:
    web = Client(HTTP_ACCEPT_LANGUAGE=language)
    assert web.login(username=manager.username, password=factories.PASSWORD)
    detail = web.get(f"/projects/{project.slug}/versions/1.0.0/")
    listing = web.get(f"/projects/{project.slug}/versions/")
    assert detail.status_code == listing.status_code == 200
    return detail.content.decode(), listing.content.decode()


@pytest.mark.django_db
def test_one_instant_in_the_server_time_zone_in_each_languages_format(frozen, project, manager):
    assert frozen.frozen_at == INSTANT
    zh_detail, zh_list = _pages(project, manager, "zh-hans")
    en_detail, en_list = _pages(project, manager, "en")
    assert 'lang="zh-hans"' in zh_detail and 'lang="en"' in en_detail
    # the version page states the moment in the language's long format ...
    assert "2026年3月1日 20:30" in zh_detail and "1 Mar 2026, 20:30" not in zh_detail
    assert "1 Mar 2026, 20:30" in en_detail and "2026年3月1日" not in en_detail
    # ... the list, a table, in the short format both languages share
    assert "2026-03-01 20:30" in zh_list and "2026-03-01 20:30" in en_list
    for page in (zh_detail, en_detail, zh_list, en_list):
        assert "12:30" not in page  # never UTC


@pytest.mark.django_db
def test_the_configured_time_zone_is_the_one_shown(frozen, project, manager, settings):
    settings.TIME_ZONE = "America/New_York"
    en_detail, en_list = _pages(project, manager, "en")
    assert "1 Mar 2026, 07:30" in en_detail and "2026-03-01 07:30" in en_list
    assert "20:30" not in en_detail + en_list


def test_both_languages_define_every_format_the_templates_name():
    named = set()
    for path in TEMPLATES.rglob("*.html"):
        rel = path.relative_to(TEMPLATES).as_posix()
        text = path.read_text(encoding="utf-8")
        named |= set(re.findall(r'\|date:"([A-Z_]+)"', text))
        if rel not in NOT_OURS:
            used = re.findall(r'\|(?:date|time):"([^"]*)"', text)
            spelled = [v for v in used if not re.fullmatch(r"[A-Z_]+_FORMAT", v)]
            assert spelled == [], (rel, spelled)  # a pattern spelled in a template
    assert {"SHORT_DATETIME_FORMAT", "DATETIME_FORMAT", "SHORT_DATE_FORMAT"} <= named
    for language in ("zh-hans", "en"):
        with translation.override(language):
            for name in named:
                module_value = formats.get_format(name)
                assert module_value and module_value != name, (language, name)
    with translation.override("zh-hans"):
        assert formats.get_format("DATETIME_FORMAT") == "Y年n月j日 H:i"
    with translation.override("en"):
        assert formats.get_format("DATETIME_FORMAT") == "j M Y, H:i"
