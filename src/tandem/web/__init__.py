"""The Tandem platform: a Django project whose apps hold data, configurations and experiments.

The engine (``tandem.spec``, ``tandem.run``) never imports this package; this package reaches the engine only
through :mod:`tandem.web.engine`.
"""
