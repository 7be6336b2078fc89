"""The web pages for caseworkers and IG officers, served by the broker.

Server-rendered (Jinja2) pages over the same services the JSON API uses; no front-end
build step. ``install_web(app)`` mounts them under ``/web``; ``open_web`` builds them at start-up.
"""

from broker.web.routes import install_web, open_web

__all__ = ["install_web", "open_web"]
