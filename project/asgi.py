"""ASGI entry point: HTTP through Django, websockets through Channels."""

import asyncio
import gc
import os
import sys

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
# Build the Django app first: it sets up the app registry that the imports below need.
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from accounts.gateway import GatewayWebsocketMiddleware  # noqa: E402
from accounts.middleware import LanguageWebsocketMiddleware  # noqa: E402
from chat.routing import websocket_urlpatterns  # noqa: E402
from project.origins import SiteOriginValidator  # noqa: E402
from project.sockets import auth_stack  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": SiteOriginValidator(
            auth_stack(
                GatewayWebsocketMiddleware(
                    LanguageWebsocketMiddleware(URLRouter(websocket_urlpatterns))
                )
            )
        ),
    }
)


def _end_replies_on_shutdown() -> None:
    """Under daphne (SIGTERM, SIGINT): before the reactor stops, running replies store their end.

    Without this the event loop just stops and a reply being written stays `streaming`.
    Nothing happens in processes that never run the Twisted reactor (tests, tools).
    """
    reactor = sys.modules.get("twisted.internet.reactor")
    if reactor is None or not hasattr(reactor, "addSystemEventTrigger"):
        return
    from twisted.internet import defer

    from chat.coach import tasks

    def end_replies() -> defer.Deferred[int]:
        return defer.Deferred.fromFuture(asyncio.ensure_future(tasks.shutdown()))

    reactor.addSystemEventTrigger("before", "shutdown", end_replies)


_end_replies_on_shutdown()

# Move the start-up heap (Django, the app registry, templates) out of the collector's way:
# full collections walking it stalled every socket of the process for 40-80 ms.
gc.freeze()
