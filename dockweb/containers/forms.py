"""The run form: renders labelled fields and shows runspec's per-field errors; validation stays in runspec."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

RESTART_CHOICES = [("no", "no"), ("always", "always"), ("unless-stopped", "unless-stopped"),
                   ("on-failure", "on-failure")]


def _lines(rows: int, placeholder: str) -> forms.Textarea:
    return forms.Textarea(attrs={"rows": rows, "placeholder": placeholder, "spellcheck": "false"})


def _text(placeholder: str = "", **attrs) -> forms.TextInput:
    return forms.TextInput(attrs={"placeholder": placeholder, "autocomplete": "off", "spellcheck": "false", **attrs})


class RunForm(forms.Form):
    """Every field is optional here: parse_run_input decides, and its messages land on the fields they name."""

    image = forms.CharField(required=False, help_text="An image on the host, for example busybox or nginx:1.27.",
                            widget=_text("busybox", list="image-tags", required=True))
    name = forms.CharField(required=False, help_text="Optional. Letters, digits, _ . - (the engine picks one if empty).",
                           widget=_text("web"))
    team = forms.ChoiceField(required=False, help_text="The team that owns the container (its dockweb.team label).")
    command = forms.CharField(required=False, help_text="Optional. Split like a shell would: sh -c 'echo hi'.",
                              widget=_text("sleep 300"))
    env = forms.CharField(required=False, label="Environment", help_text="KEY=value, one per line.",
                          widget=_lines(3, "GREETING=hello"))
    ports = forms.CharField(required=False, help_text="One per line: 8080:80, 127.0.0.1:8080:80/tcp or 80.",
                            widget=_lines(2, "8080:80"))
    volumes = forms.CharField(required=False, help_text="One per line: VOLUME:/path or VOLUME:/path:ro.",
                              widget=_lines(2, "data:/var/lib/data"))
    restart_policy = forms.ChoiceField(required=False, choices=RESTART_CHOICES, initial="no",
                                       label="Restart policy")
    restart_retries = forms.CharField(required=False, label="Retries (on-failure)",
                                      help_text="Optional: how often on-failure restarts.",
                                      widget=_text("3", inputmode="numeric"))
    memory = forms.CharField(required=False, label="Memory limit", help_text="512m, 1g or bytes.",
                             widget=_text("256m"))
    cpus = forms.CharField(required=False, label="CPUs", help_text="0.5, 2 …", widget=_text("1", inputmode="decimal"))
    pids_limit = forms.CharField(required=False, label="PIDs limit", help_text="Processes at most (-1: no limit).",
                                 widget=_text("100", inputmode="numeric"))
    labels = forms.CharField(required=False, help_text="key=value, one per line.", widget=_lines(2, "tier=web"))

    def __init__(self, *args, teams=(), allow_unassigned: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        choices = [("", "unassigned (site admins)")] if allow_unassigned else []
        self.fields["team"].choices = choices + [(t.slug, t.name) for t in teams]

    def run_input(self) -> dict:
        """Return the input parse_run_input takes: the submitted text, restart retries folded in."""
        data = {name: self.data.get(name, "") for name in self.fields}
        retries = str(data.pop("restart_retries") or "").strip()
        if retries:
            if data.get("restart_policy") != "on-failure":
                raise ValidationError({"restart_retries": ["retries apply to the on-failure policy only"]})
            if not retries.isdigit():
                raise ValidationError({"restart_retries": [f"{retries!r} is not a whole number"]})
            data["restart_policy"] = f"on-failure:{retries}"
        return data

    def show_errors(self, errors: dict[str, list[str]]) -> None:
        """Attach {field: [message]} (runspec's, or the services') to the fields; the rest to the whole form."""
        self.is_valid()  # add_error needs cleaned_data; every field is optional, so this adds nothing itself
        for field, messages in errors.items():
            target = field if field in self.fields else None
            for message in messages:
                self.add_error(target, message)
