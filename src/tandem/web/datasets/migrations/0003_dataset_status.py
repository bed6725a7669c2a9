"""A dataset's profiling status: datasets uploaded before it were profiled during their upload, so they are ready."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("datasets", "0002_reading_options_and_derived_columns"),
    ]

    operations = [
        migrations.AddField(
            model_name="dataset",
            name="status",
            field=models.CharField(
                choices=[("profiling", "profiling"), ("ready", "ready"), ("failed", "failed")],
                default="ready",
                max_length=20,
                verbose_name="status",
            ),
        ),
        migrations.AlterField(
            model_name="dataset",
            name="status",
            field=models.CharField(
                choices=[("profiling", "profiling"), ("ready", "ready"), ("failed", "failed")],
                default="profiling",
                max_length=20,
                verbose_name="status",
            ),
        ),
        migrations.AddField(
            model_name="dataset",
            name="error",
            field=models.TextField(blank=True, verbose_name="why profiling failed"),
        ),
    ]
