"""Page routes of images."""

from django.urls import path

from dockweb.images import views

urlpatterns = [
    path("", views.image_list, name="image-list"),
    path("pull/", views.image_pull, name="image-pull"),
    path("build/", views.image_build, name="image-build"),
    path("prune/", views.image_prune, name="image-prune"),
    path("<path:ref>/remove/", views.image_remove, name="image-remove"),
    path("<path:ref>/tag/", views.image_tag, name="image-tag"),
    path("<path:ref>/", views.image_detail, name="image-detail"),
]
