"""Who may train new versions of a model: its owner, the groups a maintainer shared it with, and maintainers.

A model belongs to the trainer whose first training of its name started: the name is claimed, in the same
transaction as the job, by inserting its mirror row with that owner, so of two trainers racing for a new name one
inserts and the other finds the row taken. The row may exist before MLflow knows the model; the sync fills in the
rest and never touches ``owner`` or ``shared_with``.
"""

import logging

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import IntegrityError, transaction

from core.errors import ApplicationError, Forbidden, NotFound

from ..models import RegisteredModel
from ..selectors import model_training_allowed
from .aliases import save_checked

logger = logging.getLogger(__name__)


def model_training_check(*, name: str, user) -> None:
    """Refuse ``user`` a new version of ``name`` before anything is stored; a name nobody holds yet is free.

    Raises:
        Forbidden: ``not_model_owner`` (naming the model, not who holds it).
    """
    model = RegisteredModel.objects.filter(name=name).first()
    if not model_training_allowed(model=model, user=user):
        raise _not_yours(name)


@transaction.atomic
def model_training_claim(*, name: str, user) -> RegisteredModel:
    """Make ``user`` the owner of ``name`` if nobody holds it, else check that they may train it.

    Call it in the transaction that stores the training job: the row inserted stays locked until that commits, so
    a second trainer's claim of the same new name waits for it, then finds it theirs (or, rolled back, free).

    Raises:
        Forbidden: ``not_model_owner``; nothing was written.
    """
    model = RegisteredModel.objects.filter(name=name).first()
    if model is None and user is not None and user.is_authenticated:
        try:
            with transaction.atomic():
                model = RegisteredModel(name=name, owner=user)
                save_checked(model)
            logger.info("Model %r now belongs to %s", name, user)
            return model
        except IntegrityError:
            model = RegisteredModel.objects.get(name=name)
    if model is None or not model_training_allowed(model=model, user=user):
        raise _not_yours(name)
    return model


@transaction.atomic
def model_access_set(*, name: str, owner: str | None, shared_with: list[str]) -> RegisteredModel:
    """Set the owner (a username, or ``None`` for maintainers only) and the groups ``name`` is shared with.

    Raises:
        NotFound: no model of that name in the mirror.
        ApplicationError: ``unknown_user`` / ``unknown_group``, naming the names that match none.
    """
    model = RegisteredModel.objects.select_for_update().filter(name=name).first()
    if model is None:
        raise NotFound(f"No model named {name!r}.", extra={"model_name": name})
    user = None
    if owner is not None:
        user = get_user_model().objects.filter(username=owner).first()
        if user is None:
            raise ApplicationError(f"No user named {owner!r}.", code="unknown_user", extra={"owner": owner})
    groups = list(Group.objects.filter(name__in=shared_with))
    missing = sorted(set(shared_with) - {group.name for group in groups})
    if missing:
        raise ApplicationError(
            f"No group named {', '.join(map(repr, missing))}.", code="unknown_group", extra={"groups": missing}
        )
    model.owner = user
    save_checked(model)
    model.shared_with.set(groups)
    logger.info("Model %r: owner %s, shared with %s", name, owner, sorted(shared_with))
    return model


def _not_yours(name: str) -> Forbidden:
    return Forbidden(
        f"Model {name!r} is not yours to train: only its owner, the groups it is shared with and maintainers may "
        "train new versions of it. Train under another name, or ask a maintainer to share it.",
        code="not_model_owner",
        extra={"model_name": name},
    )
