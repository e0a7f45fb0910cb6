"""An example API behind the middleware, served by ``bearer-mw demo``.

:func:`create_wsgi_app` and :func:`create_asgi_app` build the two variants
around a session store; :func:`run_demo` serves one of them.
"""

from __future__ import annotations

from .asgi_app import create_asgi_app
from .server import DemoOptions, run_demo
from .wsgi_app import create_wsgi_app

__all__ = ["DemoOptions", "create_asgi_app", "create_wsgi_app", "run_demo"]
