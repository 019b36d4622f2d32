from django.apps import AppConfig


class TelemetryConfig(AppConfig):
    name = "battloop.telemetry"
    default_auto_field = "django.db.models.BigAutoField"
