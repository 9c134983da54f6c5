"""The CRD bridge: the system of record's changes become bus events; owner GC."""
