"""Tell a user's live sockets to re-check at once when the user logs out, changes or loses a team role;
and tell a host's event sockets when one of its jobs changes state."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_out
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from dockweb.accounts.models import Membership
from dockweb.core.events import host_group, publish
from dockweb.core.models import Job


def user_group(user_id: int) -> str:
    return f"user-{user_id}"


def recheck(user_id: int | None) -> None:
    """Ask every open socket of the user to check its session and role now."""
    if user_id is not None:
        publish(user_group(user_id), {"type": "user.changed"})


@receiver(user_logged_out)
def logged_out(sender, request, user, **kwargs) -> None:
    recheck(getattr(user, "pk", None))


@receiver(post_save, sender=Membership)
@receiver(post_delete, sender=Membership)
def membership_changed(sender, instance, **kwargs) -> None:
    recheck(instance.user_id)


@receiver(post_save, sender=get_user_model())
@receiver(post_delete, sender=get_user_model())
def user_changed(sender, instance, created=False, **kwargs) -> None:
    if not created:
        recheck(instance.pk)  # deactivated, password changed (sessions invalid), or deleted


@receiver(post_save, sender=Job)
def job_changed(sender, instance, created=False, update_fields=None, **kwargs) -> None:
    # Only creation and state changes: progress and log saves come many a second and go to the job's own group.
    if instance.host_id and (created or (update_fields and "state" in update_fields)):
        publish(host_group(instance.host_id), {"type": "job.event", "job": instance.to_dict()})
