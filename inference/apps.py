from __future__ import annotations

from django.apps import AppConfig


class InferenceConfig(AppConfig):
    # Not in INSTALLED_APPS yet: the app has no models. Add it when ModelVersion & co. arrive.
    default_auto_field = "django.db.models.BigAutoField"
    name = "inference"
    verbose_name = "Models and inference"
