"""The local default: a whole region on one machine (``ccloud up``)."""
