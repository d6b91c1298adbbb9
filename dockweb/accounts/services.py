"""Team and token verbs: create teams, set and remove roles (team admins), issue and revoke personal tokens."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from dockweb.accounts.models import ApiToken, Membership, Role, Team
from dockweb.accounts.permissions import forget_roles, get_for_user, is_site_admin, visible
from dockweb.core.audit import record


def list_teams(user):
    return visible(Team, user)


def create_team(user, name: str, slug: str = "") -> Team:
    """Create a team (site admins)."""
    if not is_site_admin(user):
        record("team.create", actor=user, object_type="team", object_name=name, result="denied",
               message="site admins only")
        raise PermissionDenied("Only site admins may create teams")
    slug = slug or slugify(name)
    if not slug:
        raise ValidationError({"name": ["give the team a name with letters or digits"]})
    if Team.objects.filter(slug=slug).exists() or Team.objects.filter(name=name).exists():
        raise ValidationError({"name": [f"a team named {name} ({slug}) exists already"]})
    team = Team.objects.create(name=name, slug=slug)
    record("team.create", actor=user, obj=team)
    return team


def list_members(user, team_ref: str):
    team = get_for_user(Team, user, team_ref, "view")
    return team, Membership.objects.filter(team=team).select_related("user")


def set_role(user, team_ref: str, username: str, role: str) -> Membership:
    """Add username to the team with role, or change their role (team admins and site admins)."""
    team = get_for_user(Team, user, team_ref, "admin", audit="team.role")
    if role not in Role.values:
        raise ValidationError({"role": [f"{role!r}: use one of {', '.join(Role.values)}"]})
    member = get_user_model().objects.filter(username=username, is_active=True).first()
    if member is None:
        raise ValidationError({"username": [f"no active user named {username}"]})
    with transaction.atomic():
        membership, created = Membership.objects.get_or_create(user=member, team=team, defaults={"role": role})
        before = None if created else membership.role
        if not created and membership.role != role:
            _keep_an_admin(team, membership, role)
            membership.role = role
            membership.save(update_fields=["role"])
    forget_roles(member)
    record("team.role", actor=user, obj=team, message=f"{username}: {before or 'not a member'} -> {role}")
    return membership


def remove_member(user, team_ref: str, username: str) -> None:
    team = get_for_user(Team, user, team_ref, "admin", audit="team.remove_member")
    membership = Membership.objects.filter(team=team, user__username=username).first()
    if membership is None:
        raise ValidationError({"username": [f"{username} is not a member of {team.slug}"]})
    with transaction.atomic():
        _keep_an_admin(team, membership, None)
        membership.delete()
    record("team.remove_member", actor=user, obj=team, message=f"{username} (was {membership.role})")


def _keep_an_admin(team: Team, membership: Membership, new_role: str | None) -> None:
    """Refuse to demote or remove a team's last admin: nobody could manage the team afterwards."""
    if membership.role == Role.ADMIN and new_role != Role.ADMIN:
        if not Membership.objects.filter(team=team, role=Role.ADMIN).exclude(pk=membership.pk).exists():
            raise ValidationError({"role": [f"{membership.user.username} is the last admin of {team.slug}: "
                                            "make someone else admin first"]})


def list_tokens(user):
    return ApiToken.objects.filter(user=user) if user.is_authenticated else ApiToken.objects.none()


def issue_token(user, name: str, expires_in_days: int | None = None) -> tuple[ApiToken, str]:
    """Create a personal API token; the raw value is returned once and never stored."""
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": ["name the token (what uses it?)"]})
    if expires_in_days is not None and expires_in_days < 1:
        raise ValidationError({"expires_in_days": ["a token lasts at least one day"]})
    token, raw = ApiToken.issue(user, name, expires_in_days)
    record("token.create", actor=user, obj=token)
    return token, raw


def revoke_token(user, token_id) -> ApiToken:
    """Revoke one of user's own tokens (another user's token answers 404)."""
    from django.http import Http404

    token = ApiToken.objects.filter(user=user, pk=token_id).first() if str(token_id).isdigit() else None
    if token is None:
        raise Http404(f"No such API token: {token_id}")
    if token.revoked is None:
        ApiToken.objects.filter(pk=token.pk).update(revoked=timezone.now())
        token.revoked = timezone.now()
        record("token.revoke", actor=user, obj=token)
    return token
