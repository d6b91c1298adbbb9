"""Volumes: the local volume driver, container mount points, docker cp access, and backups."""
