from django.apps import AppConfig


class BatchesConfig(AppConfig):
    name = "batches"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from batches.settle import on_job_finished
        from generation.signals import job_finished

        job_finished.connect(on_job_finished, dispatch_uid="batches.settle")
