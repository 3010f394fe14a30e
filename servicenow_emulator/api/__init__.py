"""REST resources. Each module exposes ROUTES: (path, endpoint, methods) tuples."""
