from django.core.management import call_command
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Serve the web app and API from one process (uvicorn ASGI server, static files without a CDN)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--workers", type=int, default=1)

    def handle(self, *args, **o):
        import uvicorn

        call_command("collectstatic", interactive=False, verbosity=0)
        uvicorn.run("battloop.config.asgi:application", host=o["host"], port=o["port"], workers=o["workers"],
                    log_level="warning", access_log=False)
