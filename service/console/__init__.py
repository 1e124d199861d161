"""The browser console at ``/ui/``: static pages from the package and the JSON they read."""
