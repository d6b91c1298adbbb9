"""Object-level permissions: can(user, action, obj), the querysets a user may see, and get_for_user (404 for others)."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db.models import Model, Q, QuerySet
from django.http import Http404

from dockweb.accounts.models import Membership, Role, Team

# Which team roles allow which action on an object the team owns. Site admins may do everything.
ACTIONS: dict[str, frozenset[str]] = {
    "view": frozenset({Role.VIEWER, Role.OPERATOR, Role.ADMIN}),
    "logs": frozenset({Role.VIEWER, Role.OPERATOR, Role.ADMIN}),
    "operate": frozenset({Role.OPERATOR, Role.ADMIN}),   # lifecycle, exec, create, remove, pull, tag
    "admin": frozenset({Role.ADMIN}),                    # members, ownership, prune
}
_NEEDS = {"view": "a role in", "logs": "a role in", "operate": "the operator or admin role in",
          "admin": "the admin role in"}


def is_site_admin(user) -> bool:
    return bool(user is not None and user.is_authenticated and user.is_active and user.is_superuser)


def team_roles(user) -> dict[int, str]:
    """Return {team id: role} for user, cached on the user object for the request."""
    if user is None or not user.is_authenticated:
        return {}
    roles = getattr(user, "_dockweb_team_roles", None)
    if roles is None:
        roles = dict(Membership.objects.filter(user_id=user.pk).values_list("team_id", "role"))
        user._dockweb_team_roles = roles
    return roles


def forget_roles(user) -> None:
    """Drop the cached roles (after a membership change in the same request)."""
    user.__dict__.pop("_dockweb_team_roles", None)


def owner_team_id(obj) -> int | None:
    if isinstance(obj, Team):
        return obj.pk
    return getattr(obj, "team_id", None)


def can(user, action: str, obj) -> bool:
    """Answer whether user may do action ("view", "logs", "operate", "admin") on obj."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}: use one of {', '.join(ACTIONS)}")
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    if user.is_superuser:
        return True
    roles = team_roles(user)
    # Hosts belong to the site: any team member sees them, only site admins change them.
    if getattr(obj, "is_site_wide", False):
        return action == "view" and bool(roles)
    if action == "view" and getattr(obj, "viewable_by_creator", False) and obj.user_id == user.pk:
        return True
    team_id = owner_team_id(obj)
    if team_id is None:
        # Unassigned objects (made with the docker CLI) are the site admins'; base images are shared read-only.
        return action == "view" and getattr(obj, "shared_when_unassigned", False) and bool(roles)
    return roles.get(team_id) in ACTIONS[action]


def visible(model: type[Model], user) -> QuerySet:
    """Return the objects of model that user may view."""
    if user is None or not user.is_authenticated or not user.is_active:
        return model.objects.none()
    if user.is_superuser:
        return model.objects.all()
    ids = list(team_roles(user))
    if model is Team:
        return Team.objects.filter(pk__in=ids)
    if getattr(model, "is_site_wide", False):
        return model.objects.all() if ids else model.objects.none()
    q = Q(team_id__in=ids)
    if ids and getattr(model, "shared_when_unassigned", False):
        q |= Q(team__isnull=True)
    if getattr(model, "viewable_by_creator", False):
        q |= Q(user_id=user.pk)
    return model.objects.filter(q)


def lookup(model: type[Model], qs: QuerySet, ref, host=None):
    """Resolve ref in qs with the model's own lookup (engine id, name, tag...) or by primary key."""
    if hasattr(model, "lookup"):
        return model.lookup(qs, str(ref), host=host)
    if isinstance(ref, int) or (isinstance(ref, str) and ref.isdigit()):
        return qs.filter(pk=int(ref)).first()
    return None


def get_for_user(model: type[Model], user, ref, action: str = "view", *, host=None, audit: str | None = None):
    """Return the object ref names if user may do action on it; 404 when user may not see it, 403 otherwise.

    Another team's object answers 404, exactly like one that does not exist: its name is not revealed.
    With audit, a refusal is written to the audit log under that action name.
    """
    obj = lookup(model, visible(model, user), ref, host=host)
    if obj is None:
        raise Http404(f"No such {model._meta.verbose_name}: {ref}")
    if not can(user, action, obj):
        message = f"{describe(obj)}: this needs {_NEEDS[action]} its team"
        if audit:
            from dockweb.core.audit import record

            record(audit, actor=user, obj=obj, result="denied", message=message)
        raise PermissionDenied(message)
    return obj


def team_for_user(user, slug: str | None, action: str = "operate") -> Team | None:
    """Return the team (by slug) that user acts for when creating an object; None means unassigned (site admins)."""
    if not slug:
        if is_site_admin(user):
            return None
        raise PermissionDenied("Pick a team: only site admins may create unassigned objects")
    return get_for_user(Team, user, slug, action)


def describe(obj) -> str:
    """Return "container web" style words for messages."""
    name = getattr(obj, "display_name", None) or getattr(obj, "name", None) or str(obj.pk)
    return f"{obj._meta.verbose_name} {name}"
