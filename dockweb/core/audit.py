"""Write audit entries: who did what to which object, from where, with what result."""

from __future__ import annotations

import contextvars
import logging

from dockweb.core.models import AuditEntry

log = logging.getLogger("dockweb.audit")

# The client address of the request being served (set by AuditSourceMiddleware), so services need no request.
source_address: contextvars.ContextVar[str | None] = contextvars.ContextVar("dockweb_source_address", default=None)


def record(action: str, *, actor=None, obj=None, result: str = AuditEntry.Result.OK, message: str = "",
           team_slug: str = "", host_name: str = "", object_type: str = "", object_id: str = "",
           object_name: str = "", actor_name: str = "", source_ip: str | None = None) -> AuditEntry:
    """Append one entry; obj (a model with audit_ref()) fills the object, team and host fields."""
    fields = {"object_type": object_type, "object_id": object_id, "object_name": object_name,
              "team_slug": team_slug, "host_name": host_name}
    if obj is not None:
        fields.update({k: v for k, v in obj.audit_ref().items() if v and not fields.get(k)})
    if actor is not None and not getattr(actor, "is_authenticated", False):
        actor = None
    entry = AuditEntry.objects.create(
        action=action, actor=actor, actor_name=actor_name or (actor.get_username() if actor else ""),
        result=result, message=message, source_ip=source_ip or source_address.get(), **fields)
    log.info("audit %s by %s on %s %s: %s %s", action, entry.actor_name or "-", entry.object_type,
             entry.object_name, result, message)
    return entry


def visible_entries(user):
    """Return the audit entries user may read: all for site admins, their teams' for team admins."""
    from dockweb.accounts.models import Membership, Role

    if user is None or not user.is_authenticated or not user.is_active:
        return AuditEntry.objects.none()
    if user.is_superuser:
        return AuditEntry.objects.all()
    slugs = Membership.objects.filter(user_id=user.pk, role=Role.ADMIN).values_list("team__slug", flat=True)
    return AuditEntry.objects.filter(team_slug__in=list(slugs))


def can_read_audit(user) -> bool:
    from dockweb.accounts.models import Membership, Role

    if user is None or not user.is_authenticated or not user.is_active:
        return False
    return user.is_superuser or Membership.objects.filter(user_id=user.pk, role=Role.ADMIN).exists()
