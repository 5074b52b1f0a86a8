from django.apps import AppConfig


class SeriesConfig(AppConfig):
    name = "series"
    verbose_name = "Series"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from generation.signals import job_finished
        from series.progress import on_job_finished

        job_finished.connect(on_job_finished, dispatch_uid="series.progress")
