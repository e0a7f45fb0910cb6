"""App variants that the harness serves, one per server process.

The server loads a factory (``asgi:create_app`` or ``wsgi:create_app``), which
reads the variant's app id and the Redis URL from environment variables that the
harness sets. Every variant answers ``GET /me`` with a small JSON object that
contains the user id.
"""
