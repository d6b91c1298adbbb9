"""Hosts: each one engine API endpoint, its Celery queue and its health."""
