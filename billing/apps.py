from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class BillingConfig(AppConfig):
    name = "billing"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from billing.models import Price
        from billing.pricing import price_book_changed

        post_save.connect(price_book_changed, sender=Price, dispatch_uid="price-book-changed")
        post_delete.connect(price_book_changed, sender=Price, dispatch_uid="price-book-changed")
