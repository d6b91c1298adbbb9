"""dockweb's control plane: a Django project that manages container hosts through their engine API."""
