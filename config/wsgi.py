import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()

from config.warmup import (  # noqa: E402  (needs settings)
    collect_young_objects_less_often,
    freeze_startup_objects,
    warm_up,
)

warm_up(application)
freeze_startup_objects()
collect_young_objects_less_often()
