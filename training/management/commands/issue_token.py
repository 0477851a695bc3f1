from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from rest_framework.authtoken.models import Token

# The groups made by training's migration 0003_roles, from least to most allowed.
ROLES = ("predictor", "trainer", "maintainer")


class Command(BaseCommand):
    help = (
        "Create USERNAME if needed and print only its API token. --role gives the user that role (replacing the "
        "role it had); a new user without --role is a trainer."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument(
            "--role",
            choices=ROLES,
            help="predictor: predict and read models; trainer: + train and see own jobs; "
            "maintainer: + move aliases and see all jobs.",
        )

    @transaction.atomic
    def handle(self, *args, username: str, role: str | None, **options):
        user, created = get_user_model().objects.get_or_create(username=username)
        role = role or ("trainer" if created else None)
        if role is not None:
            group = Group.objects.filter(name=role).first()
            if group is None:
                raise CommandError(f"There is no {role!r} group: run `python manage.py migrate` first.")
            user.groups.remove(*Group.objects.filter(name__in=ROLES).exclude(pk=group.pk))
            user.groups.add(group)
        token, _ = Token.objects.get_or_create(user=user)
        self.stdout.write(token.key)
