import os

from django.core.management import call_command
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Serve the web app and API from one process group (gunicorn WSGI server; static files by WhiteNoise, no CDN)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--workers", type=int, default=max(2, min(4, (os.cpu_count() or 1))),
                            help="worker processes (default: CPU count, 2–4)")
        parser.add_argument("--threads", type=int, default=4, help="threads per worker")

    def handle(self, *args, **o):
        from gunicorn.app.base import BaseApplication

        from battloop.config.wsgi import application

        call_command("collectstatic", interactive=False, verbosity=0)

        class Server(BaseApplication):
            def load_config(self):
                self.cfg.set("bind", f"{o['host']}:{o['port']}")
                self.cfg.set("workers", o["workers"])
                self.cfg.set("threads", o["threads"])
                self.cfg.set("worker_class", "gthread")
                self.cfg.set("timeout", 120)
                self.cfg.set("accesslog", None)
                self.cfg.set("loglevel", "warning")

            def load(self):
                return application

        Server().run()
