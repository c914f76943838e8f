"""The HTTP view: the app (landing page, /metrics), the server that runs it, --web.config.file."""
