import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()

from config.warmup import freeze_startup_objects, warm_up  # noqa: E402  (needs settings)

warm_up(application)
freeze_startup_objects()
