"""Load the coaches Practalk ships with (idempotent: matched by slug)."""

from django.db import migrations


def load(apps, schema_editor):
    from chat.coach.personas import PERSONAS

    Persona = apps.get_model("chat", "Persona")
    for data in PERSONAS:
        Persona.objects.update_or_create(slug=data["slug"], defaults=data)


class Migration(migrations.Migration):
    dependencies = [("chat", "0001_initial")]
    operations = [migrations.RunPython(load, migrations.RunPython.noop)]
