"""Page routes of volumes."""

from django.urls import path

from dockweb.volumes import views

urlpatterns = [
    path("", views.volume_list, name="volume-list"),
    path("create/", views.volume_create, name="volume-create"),
    path("prune/", views.volume_prune, name="volume-prune"),
    path("<str:ref>/", views.volume_detail, name="volume-detail"),
    path("<str:ref>/files/", views.volume_files, name="volume-files"),
    path("<str:ref>/file/", views.volume_file, name="volume-file"),
    path("<str:ref>/remove/", views.volume_remove, name="volume-remove"),
]
