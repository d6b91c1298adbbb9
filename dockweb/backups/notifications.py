"""Tell a team when a backup or a verify fails, or a policy is overdue: e-mail to its admins and its webhook."""

from __future__ import annotations

import logging

import requests
from django.conf import settings
from django.core.mail import send_mail
from django.utils import timezone

from dockweb.core.audit import record

log = logging.getLogger("dockweb.backups")
WEBHOOK_TIMEOUT = 10


def recipients(team) -> list[str]:
    from dockweb.accounts.models import Membership, Role

    return sorted({m.user.email for m in Membership.objects.filter(team=team, role=Role.ADMIN).select_related("user")
                   if m.user.email and m.user.is_active})


def notify(team, event: str, text: str, *, policy=None, job=None, volume: str = "") -> None:
    """Send the alert by mail and webhook; a failure to deliver is logged and audited, never raised."""
    if team is None:
        return
    payload = {"event": event, "team": team.slug, "text": text, "time": timezone.now().isoformat(),
               "policy": policy.name if policy else None, "policy_id": policy.pk if policy else None,
               "job_id": job.pk if job else None, "volume": volume or None}
    delivered, failed = [], []
    to = recipients(team)
    if to:
        try:
            send_mail(f"[dockweb] {event}: team {team.slug}", text,
                      getattr(settings, "DEFAULT_FROM_EMAIL", None), to)
            delivered.append(f"mail to {len(to)}")
        except Exception as e:     # SMTP failures come in many types; an alert must not break the job's outcome
            failed.append(f"mail: {e}")
    if team.webhook_url:
        try:
            r = requests.post(team.webhook_url, json=payload, timeout=WEBHOOK_TIMEOUT)
            r.raise_for_status()
            delivered.append("webhook")
        except requests.RequestException as e:
            failed.append(f"webhook: {e}")
    for problem in failed:
        log.warning("backup alert %r for team %s not delivered: %s", event, team.slug, problem)
    record("backup.notify", object_type="team", object_name=team.slug, team_slug=team.slug,
           actor_name="notifications", result="failed" if failed else "ok",
           message=f"{event}: {text} ({', '.join(delivered + failed) or 'no recipient'})")
