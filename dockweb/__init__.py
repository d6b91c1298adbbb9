"""dockweb's control plane: a Django project that manages container hosts through their engine API."""

# Load the Celery app with Django, so @shared_task binds to it in web, worker and beat alike.
from dockweb.celery import app as celery_app

__all__ = ("celery_app",)
