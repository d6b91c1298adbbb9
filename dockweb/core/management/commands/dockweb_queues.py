"""Print the Celery queues a worker of this site consumes, comma-separated (for `celery worker -Q`)."""

from django.core.management.base import BaseCommand

from dockweb.celery import host_queues


class Command(BaseCommand):
    help = "Print the default queue and every host's queue, comma-separated."

    def handle(self, *args, **options) -> None:
        self.stdout.write(",".join(host_queues()))
