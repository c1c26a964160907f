"""The "Data managers" group: what a staff data manager may do in the Django admin.

Project scoping still applies on top (records/admin.py shows staff only their projects' rows);
the group only grants the model permissions that make the admin pages usable.
"""

from django.apps.registry import Apps
from django.contrib.auth.management import create_permissions
from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor

GROUP = "Data managers"
PERMISSIONS = {
    ("records", "project"): ("view", "change"),
    ("records", "projectmembership"): ("view", "add", "change", "delete"),
    ("records", "patient"): ("view", "change"),
    ("records", "examination"): ("view", "change"),
    ("records", "video"): ("view", "change"),
    ("records", "frame"): ("view", "change"),
    ("jobs", "job"): ("view",),
}


def create_group(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    # Permissions are normally created after all migrations (post_migrate); make sure they exist.
    # Historical app configs have no models module, which create_permissions takes as "no models".
    for app_label in ("records", "jobs"):
        app_config = apps.get_app_config(app_label)
        app_config.models_module = True
        create_permissions(app_config, verbosity=0, apps=apps)
        app_config.models_module = None
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    group, _ = group_model.objects.get_or_create(name=GROUP)
    for (app_label, model), actions in PERMISSIONS.items():
        codenames = [f"{action}_{model}" for action in actions]
        group.permissions.add(
            *permission_model.objects.filter(content_type__app_label=app_label, codename__in=codenames)
        )


def remove_group(apps: Apps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    apps.get_model("auth", "Group").objects.filter(name=GROUP).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("records", "0001_initial"),
        ("jobs", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_group, remove_group)]
