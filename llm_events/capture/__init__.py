"""Capture: recording traffic that does not go through our client API.

``proxy`` (an ASGI reverse proxy, ``llm-events proxy``) and ``transport`` (httpx transports
for SDKs in this process) share one exchange-recording core, ``exchange``; ``routing`` maps
paths to upstreams, ``retries`` tells an SDK's retry from a new call, ``parsing`` is where
capture meets the provider adapters.
"""
