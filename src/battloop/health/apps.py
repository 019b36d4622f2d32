from django.apps import AppConfig


class HealthConfig(AppConfig):
    name = "battloop.health"
    default_auto_field = "django.db.models.BigAutoField"

    def import_models(self):
        # health/models.py is the pure aging model; the stored assessments live in records.py.
        super().import_models()
        from . import records  # noqa: F401
