from django.apps import AppConfig


class HealthConfig(AppConfig):
    name = "battloop.health"
    default_auto_field = "django.db.models.BigAutoField"
