"""Page routes of networks."""

from django.urls import path

from dockweb.networks import views

urlpatterns = [
    path("", views.network_list, name="network-list"),
    path("create/", views.network_create, name="network-create"),
    path("prune/", views.network_prune, name="network-prune"),
    path("<str:ref>/", views.network_detail, name="network-detail"),
    path("<str:ref>/remove/", views.network_remove, name="network-remove"),
    path("<str:ref>/<str:verb>/", views.network_attach, name="network-attach"),
]
