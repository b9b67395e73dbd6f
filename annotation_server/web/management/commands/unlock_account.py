"""Unlock an account that too many wrong passwords locked, before its cool-off
ends, and audit it: `manage.py unlock_account USERNAME --by ADMIN --reason "..."`.

The audit event "accounts.unlocked" names the administrator (--by, a staff
account, as the actor), the account unlocked, the reason, whether it was locked
and the operating-system user who ran the command. The failure records are
removed in the same transaction as the event is written: no unlock without its
event. (It lives in web because accounts and audit do not import each other.)
"""

from __future__ import annotations

import getpass

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from annotation_server.accounts import lockout
from annotation_server.audit import services as audit


class Command(BaseCommand):
    help = "Unlock an account locked after wrong passwords; audited."

    def add_arguments(self, parser):
        parser.add_argument("username", help="the account to unlock")
        parser.add_argument("--reason", required=True, help="why (kept in the audit log)")
        parser.add_argument(
            "--by", required=True, help="user name of the administrator who unlocks it"
        )

    def handle(self, *args, username: str, reason: str, by: str, **options):
        reason = reason.strip()
        if not reason:
            raise CommandError("Give a reason: it is kept in the audit log.")
        User = get_user_model()
        admin = User.objects.filter(username=by, is_active=True).first()
        if admin is None or not (admin.is_staff or admin.is_superuser):
            raise CommandError(f"{by!r} is not an active administrator (staff) account.")
        account = User.objects.filter(username=username).first()
        was_locked = lockout.is_locked(username)
        with transaction.atomic():
            removed = lockout.unlock(username)
            audit.record(
                "accounts.unlocked",
                actor=admin,
                obj=account,
                data={
                    "username": username,
                    "reason": reason,
                    "was_locked": was_locked,
                    "failure_records_removed": removed,
                    "os_user": _os_user(),
                },
            )
        state = "was locked" if was_locked else "was not locked"
        self.stdout.write(f"Unlocked {username} ({state}); audited as accounts.unlocked.")


def _os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return ""
