from django.apps import AppConfig


class WebConfig(AppConfig):
    name = "battloop.web"
    default_auto_field = "django.db.models.BigAutoField"
