from django.apps import AppConfig


class TriageConfig(AppConfig):
    name = "battloop.triage"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from .warranty import connect

        connect()  # a redeployment (with its warranty) is recorded with every 'redeployed' transition
