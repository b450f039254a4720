"""Phase 5 training, in small parts. ``config`` (torch-free) holds a run's settings and
their defaults; the loop itself is still :mod:`lensfinder.train`."""
