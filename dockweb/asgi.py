"""ASGI entry point (Daphne serves it; Channels routing joins here with the control-plane issue)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dockweb.settings")

application = get_asgi_application()
