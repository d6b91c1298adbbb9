"""Template tags of the live pages: which hosts' event sockets a page listens to."""

from django import template

from dockweb.accounts.permissions import visible
from dockweb.hosts.models import Host

register = template.Library()


@register.simple_tag(takes_context=True)
def live_hosts(context) -> str:
    """Return the pks of the hosts the page's user may view, space-separated (for data-live-hosts)."""
    request = context.get("request")
    if request is None or not request.user.is_authenticated:
        return ""
    return " ".join(str(pk) for pk in visible(Host, request.user).values_list("pk", flat=True))
