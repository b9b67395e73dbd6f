"""Creating people with a profile and a stable pseudonym."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import transaction

from annotation_server.accounts.models import UserProfile


def next_pseudonym(prefix: str = "RD") -> str:
    taken = set(
        UserProfile.objects.filter(pseudonym__startswith=prefix).values_list("pseudonym", flat=True)
    )
    n = len(taken) + 1
    while f"{prefix}{n:03d}" in taken:
        n += 1
    return f"{prefix}{n:03d}"


@transaction.atomic
def create_person(username: str, password: str, *, roles=(), email: str = "", **profile) -> object:
    user = get_user_model().objects.create_user(username=username, password=password, email=email)
    UserProfile.objects.create(
        user=user,
        pseudonym=profile.pop("pseudonym", None) or next_pseudonym(),
        roles=list(roles),
        **profile,
    )
    return user


def profile_of(user) -> UserProfile | None:
    try:
        return user.profile
    except UserProfile.DoesNotExist:
        return None
