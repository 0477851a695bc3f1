from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from core.tokens import token_create

# The groups made by training's migration 0003_roles, from least to most allowed.
ROLES = ("predictor", "trainer", "maintainer")


class Command(BaseCommand):
    help = (
        "Create USERNAME if needed, issue a new API token for it and print only the token (shown this once: the "
        "database keeps its digest). It expires after MDS_TOKEN_TTL_DAYS (--days to choose, 0: never); the user's "
        "other tokens keep working. --role gives the user that role (replacing the role it had); a new user "
        "without --role is a trainer."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument(
            "--role",
            choices=ROLES,
            help="predictor: predict and read models; trainer: + train and see own jobs; "
            "maintainer: + move aliases and see all jobs.",
        )
        parser.add_argument("--days", type=float, help="Days the token works (default MDS_TOKEN_TTL_DAYS; 0: never).")

    @transaction.atomic
    def handle(self, *args, username: str, role: str | None, days: float | None, **options):
        user, created = get_user_model().objects.get_or_create(username=username)
        role = role or ("trainer" if created else None)
        if role is not None:
            group = Group.objects.filter(name=role).first()
            if group is None:
                raise CommandError(f"There is no {role!r} group: run `python manage.py migrate` first.")
            user.groups.remove(*Group.objects.filter(name__in=ROLES).exclude(pk=group.pk))
            user.groups.add(group)
        _, key = token_create(user=user, days=days)
        self.stdout.write(key)
