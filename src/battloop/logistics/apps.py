from django.apps import AppConfig


class LogisticsConfig(AppConfig):
    name = "battloop.logistics"
    default_auto_field = "django.db.models.BigAutoField"
