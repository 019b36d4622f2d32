from django.apps import AppConfig


class TriageConfig(AppConfig):
    name = "battloop.triage"
    default_auto_field = "django.db.models.BigAutoField"
