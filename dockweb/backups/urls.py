"""Page routes of backups."""

from django.urls import path

from dockweb.backups import views

urlpatterns = [
    path("", views.overview, name="backup-overview"),
    path("policies/new/", views.policy_edit, name="backup-policy-new"),
    path("policies/<int:pk>/", views.policy_edit, name="backup-policy-edit"),
    path("policies/<int:pk>/delete/", views.policy_delete, name="backup-policy-delete"),
    path("policies/<int:pk>/run/", views.policy_run, name="backup-policy-run"),
    path("volumes/<str:ref>/", views.volume_backups, name="backup-volume"),
    path("volumes/<str:ref>/run/", views.volume_backup_now, name="backup-volume-run"),
    path("volumes/<str:ref>/upload/", views.volume_upload, name="backup-volume-upload"),
    path("<int:pk>/verify/", views.backup_verify, name="backup-verify"),
    path("<int:pk>/delete/", views.backup_delete, name="backup-delete"),
    path("<int:pk>/download/", views.backup_download, name="backup-download"),
    path("<int:pk>/restore/", views.backup_restore, name="backup-restore"),
    path("teams/<slug:slug>/", views.team_settings, name="backup-team"),
    path("s3/<int:pk>/delete/", views.s3_target_delete, name="backup-s3-delete"),
]
