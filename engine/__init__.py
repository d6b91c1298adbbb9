"""dockweb's container engine: images, containers and a Docker Engine API on a unix socket."""

API_VERSION = "1.50"
MIN_API_VERSION = "1.24"
ENGINE_VERSION = "0.1.0"
