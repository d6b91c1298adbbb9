"""The REST API under /api/: personal-token or session authentication, OpenAPI schema at /api/schema/."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from dockweb.accounts import api as accounts
from dockweb.containers import api as containers
from dockweb.core import api as core
from dockweb.images import api as images
from dockweb.networks import api as networks
from dockweb.volumes import api as volumes

urlpatterns = [
    path("", include("dockweb.backups.api_urls")),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("hosts/", core.HostList.as_view(), name="api-hosts"),
    path("hosts/<str:name>/", core.HostDetail.as_view(), name="api-host"),
    path("jobs/", core.JobList.as_view(), name="api-jobs"),
    path("jobs/<int:pk>/", core.JobDetail.as_view(), name="api-job"),
    path("audit/", core.AuditList.as_view(), name="api-audit"),
    path("containers/", containers.ContainerList.as_view(), name="api-containers"),
    path("containers/bulk/", containers.ContainerBulk.as_view(), name="api-containers-bulk"),
    path("containers/prune/", containers.ContainerPrune.as_view(), name="api-containers-prune"),
    path("containers/<str:ref>/", containers.ContainerDetail.as_view(), name="api-container"),
    path("containers/<str:ref>/logs/", containers.ContainerLogs.as_view(), name="api-container-logs"),
    path("containers/<str:ref>/inspect/", containers.ContainerInspect.as_view(), name="api-container-inspect"),
    path("containers/<str:ref>/<str:action>/", containers.ContainerAction.as_view(), name="api-container-action"),
    path("images/", images.ImageList.as_view(), name="api-images"),
    path("images/pull/", images.ImagePull.as_view(), name="api-images-pull"),
    path("images/prune/", images.ImagePrune.as_view(), name="api-images-prune"),
    # Image refs hold slashes (ghcr.io/org/app:1): path converters, the suffixed routes first.
    path("images/<path:ref>/tag/", images.ImageTag.as_view(), name="api-image-tag"),
    path("images/<path:ref>/history/", images.ImageHistory.as_view(), name="api-image-history"),
    path("images/<path:ref>/inspect/", images.ImageInspect.as_view(), name="api-image-inspect"),
    path("images/<path:ref>/", images.ImageDetail.as_view(), name="api-image"),
    path("volumes/", volumes.VolumeList.as_view(), name="api-volumes"),
    path("volumes/prune/", volumes.VolumePrune.as_view(), name="api-volumes-prune"),
    path("volumes/<str:ref>/", volumes.VolumeDetail.as_view(), name="api-volume"),
    path("volumes/<str:ref>/inspect/", volumes.VolumeInspect.as_view(), name="api-volume-inspect"),
    path("networks/", networks.NetworkList.as_view(), name="api-networks"),
    path("networks/prune/", networks.NetworkPrune.as_view(), name="api-networks-prune"),
    path("networks/<str:ref>/", networks.NetworkDetail.as_view(), name="api-network"),
    path("networks/<str:ref>/inspect/", networks.NetworkInspect.as_view(), name="api-network-inspect"),
    path("networks/<str:ref>/connect/", networks.NetworkAttach.as_view(verb="connect"), name="api-network-connect"),
    path("networks/<str:ref>/disconnect/", networks.NetworkAttach.as_view(verb="disconnect"),
         name="api-network-disconnect"),
    path("teams/", accounts.TeamList.as_view(), name="api-teams"),
    path("teams/<slug:slug>/members/", accounts.TeamMembers.as_view(), name="api-team-members"),
    path("tokens/", accounts.TokenList.as_view(), name="api-tokens"),
    path("tokens/<int:pk>/", accounts.TokenDetail.as_view(), name="api-token"),
]
