"""DRF permission classes built from Django permissions, so the roles (groups) decide who may call what."""

from rest_framework.permissions import BasePermission


def requires(*perms: str) -> type[BasePermission]:
    """A permission class that lets in authenticated users holding every one of ``perms`` (superusers always)."""

    class HasPermissions(BasePermission):
        required = perms
        message = f"Your role does not allow this (it needs {', '.join(perms)})."

        def has_permission(self, request, view) -> bool:
            user = request.user
            return bool(user and user.is_authenticated and user.has_perms(perms))

    HasPermissions.__name__ = HasPermissions.__qualname__ = "Requires_" + "_".join(p.replace(".", "_") for p in perms)
    return HasPermissions
