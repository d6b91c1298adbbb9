"""Account pages: personal API tokens, teams and their members."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from dockweb.accounts import services
from dockweb.accounts.models import Role
from dockweb.accounts.permissions import can, is_site_admin
from dockweb.core.views import shown_as_message


@login_required
def token_list(request):
    new_token = None
    if request.method == "POST":
        with shown_as_message(request):
            days = request.POST.get("expires_in_days", "").strip()
            _, new_token = services.issue_token(request.user, request.POST.get("name", ""),
                                                int(days) if days.isdigit() else None)
    # The raw token is in this one response only.
    return render(request, "accounts/tokens.html", {"tokens": services.list_tokens(request.user),
                                                    "new_token": new_token})


@login_required
@require_POST
def token_revoke(request, pk: int):
    services.revoke_token(request.user, pk)
    messages.success(request, "token revoked")
    return redirect("token-list")


@login_required
def team_list(request):
    if request.method == "POST":
        with shown_as_message(request):
            team = services.create_team(request.user, request.POST.get("name", "").strip(),
                                        request.POST.get("slug", "").strip())
            messages.success(request, f"created team {team.name}")
            return redirect("team-detail", slug=team.slug)
        return redirect("team-list")
    return render(request, "accounts/teams.html", {"teams": services.list_teams(request.user),
                                                   "can_create": is_site_admin(request.user)})


@login_required
def team_detail(request, slug: str):
    team, members = services.list_members(request.user, slug)
    return render(request, "accounts/team.html", {"team": team, "members": members, "roles": Role.choices,
                                                  "can_admin": can(request.user, "admin", team)})


@login_required
@require_POST
def team_set_role(request, slug: str):
    username = request.POST.get("username", "").strip()
    with shown_as_message(request):
        if request.POST.get("remove"):
            services.remove_member(request.user, slug, username)
            messages.success(request, f"removed {username}")
        else:
            services.set_role(request.user, slug, username, request.POST.get("role", ""))
            messages.success(request, f"{username} is now {request.POST.get('role')}")
    return redirect("team-detail", slug=slug)
