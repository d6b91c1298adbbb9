"""Audit logins: successful, failed (with the name tried and the source address) and logouts."""

from __future__ import annotations

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from dockweb.core.audit import record


def _ip(request) -> str | None:
    return request.META.get("REMOTE_ADDR") if request is not None else None


@receiver(user_login_failed)
def audit_failed_login(sender, credentials, request=None, **kwargs) -> None:
    # credentials has the password already cleansed by Django; only the username is kept.
    name = str(credentials.get("username", ""))[:150]
    record("auth.login_failed", actor_name=name, object_type="user", object_name=name, result="denied",
           message="wrong username or password", source_ip=_ip(request))


@receiver(user_logged_in)
def audit_login(sender, request, user, **kwargs) -> None:
    record("auth.login", actor=user, object_type="user", object_id=str(user.pk), object_name=user.get_username(),
           source_ip=_ip(request))


@receiver(user_logged_out)
def audit_logout(sender, request, user, **kwargs) -> None:
    if user is not None:
        record("auth.logout", actor=user, object_type="user", object_id=str(user.pk),
               object_name=user.get_username(), source_ip=_ip(request))
