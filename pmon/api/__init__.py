"""The daemon's HTTP side: the seed's JSON routes, a WebSocket live stream and Prometheus exposition.

Importing this package costs nothing: aiohttp and prometheus_client load only
when a server starts (``pmon.api.server``), so ``pmon collect`` without
``--api`` and the recording API never pay for them.
"""
