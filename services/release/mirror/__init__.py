"""The artifact mirror: format readers, the copier and the regional mirror HTTP server."""
