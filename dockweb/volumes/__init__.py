"""Volumes: the model that follows the engine, and list/create/remove/prune."""
