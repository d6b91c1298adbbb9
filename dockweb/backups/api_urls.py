"""REST routes of backups, included under /api/."""

from django.urls import path

from dockweb.backups import api

urlpatterns = [
    path("backups/", api.BackupList.as_view(), name="api-backups"),
    path("backups/policies/", api.PolicyList.as_view(), name="api-backup-policies"),
    path("backups/policies/<int:pk>/", api.PolicyDetail.as_view(), name="api-backup-policy"),
    path("backups/policies/<int:pk>/run/", api.PolicyRun.as_view(), name="api-backup-policy-run"),
    path("backups/volumes/<str:ref>/run/", api.VolumeBackupNow.as_view(), name="api-backup-volume-run"),
    path("backups/volumes/<str:ref>/upload/", api.VolumeUpload.as_view(), name="api-backup-volume-upload"),
    path("backups/<int:pk>/", api.BackupDetail.as_view(), name="api-backup"),
    path("backups/<int:pk>/verify/", api.BackupVerify.as_view(), name="api-backup-verify"),
    path("backups/<int:pk>/restore/", api.BackupRestore.as_view(), name="api-backup-restore"),
    path("backups/<int:pk>/download/", api.BackupDownload.as_view(), name="api-backup-download"),
]
