"""Backup forms: render labelled fields; validation lives in services (its messages land on the fields they name)."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from dockweb.backups.models import BackupPolicy


def _text(placeholder: str = "", **attrs) -> forms.TextInput:
    return forms.TextInput(attrs={"placeholder": placeholder, "autocomplete": "off", "spellcheck": "false", **attrs})


def _number() -> forms.NumberInput:
    return forms.NumberInput(attrs={"min": "0", "inputmode": "numeric"})


class PolicyForm(forms.Form):
    name = forms.CharField(required=False, widget=_text("nightly", required=True))
    team = forms.ChoiceField(required=False, help_text="The team whose volumes it backs up, in its timezone.")
    volume = forms.ChoiceField(required=False, help_text="One volume…")
    selector = forms.CharField(required=False, label="…or a label selector",
                               help_text="key or key=value: every team volume with that label, new ones included.",
                               widget=_text("backup=nightly"))
    preset = forms.ChoiceField(choices=BackupPolicy.Preset.choices, initial="daily", label="Schedule")
    cron = forms.CharField(required=False, label="Cron expression",
                           help_text="With the cron schedule: minute hour day-of-month month day-of-week.",
                           widget=_text("30 2 * * 1-5"))
    keep_last = forms.IntegerField(min_value=0, initial=7, label="Keep last", widget=_number())
    keep_daily = forms.IntegerField(min_value=0, initial=7, label="Daily", widget=_number())
    keep_weekly = forms.IntegerField(min_value=0, initial=4, label="Weekly", widget=_number())
    keep_monthly = forms.IntegerField(min_value=0, initial=6, label="Monthly", widget=_number())
    compression = forms.ChoiceField(choices=[("zstd", "zstd"), ("gzip", "gzip"), ("none", "none")], initial="zstd")
    consistency = forms.ChoiceField(choices=BackupPolicy.Consistency.choices, initial="pause",
                                    help_text="A container's dockweb.backup.consistency label overrides it.")
    verify = forms.ChoiceField(choices=[("checksum", "Read back, compare checksums"),
                                        ("full", "Also every file against the manifest")], initial="checksum")
    command_container = forms.CharField(required=False, label="Container for commands", widget=_text("db"))
    pre_command = forms.CharField(required=False, label="Pre-command",
                                  help_text="Runs with sh -c in that container before the snapshot; a failure "
                                            "stops the run.", widget=_text("pg_dump -U app app > /backup/dump.sql"))
    post_command = forms.CharField(required=False, label="Post-command", widget=_text("rm /backup/dump.sql"))
    storage = forms.ChoiceField(choices=BackupPolicy.Storage.choices, initial="engine", label="Keep archives in")
    s3_target = forms.ChoiceField(required=False, label="S3 target")
    encryption = forms.ChoiceField(choices=BackupPolicy.Encryption.choices, initial="none")
    passphrase = forms.CharField(required=False, widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
                                 help_text="Never stored: restoring asks for it. Leave empty to keep the current one.")
    age_recipient = forms.CharField(required=False, label="age public key", widget=_text("age1…"),
                                    help_text="Restoring asks for the matching identity (AGE-SECRET-KEY-1…).")
    enabled = forms.BooleanField(required=False, initial=True)

    def __init__(self, *args, teams=(), volumes=(), s3_targets=(), editing: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["team"].choices = [(t.slug, t.name) for t in teams]
        self.fields["volume"].choices = [("", "—")] + [(v.name, f"{v.name} ({v.team.slug})") for v in volumes]
        self.fields["s3_target"].choices = [("", "—")] + [(str(t.pk), t.display_name) for t in s3_targets]
        if editing:
            self.fields["team"].disabled = True

    def apply_errors(self, error: ValidationError) -> None:
        """Put a service's ValidationError on the fields it names (the rest on the form)."""
        for field, messages in error.message_dict.items():
            self.add_error(field if field in self.fields else None, messages)
