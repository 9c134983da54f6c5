"""Container Cloud common library: models, store, bus, controller runtime, metrics."""
