from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ChatConfig(AppConfig):
    name = "chat"
    verbose_name = _("Chat")

    def ready(self) -> None:
        from chat import media  # noqa: F401  (audio files leave with their rows)
        from chat.live import signals  # noqa: F401  (closes sockets on logout)
