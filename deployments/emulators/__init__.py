"""Loopback emulators of the services the pipeline talks to, for the tests and the local sandbox.

`server.BackgroundServer` runs any ASGI app on 127.0.0.1 in a background thread; each emulator
module (e.g. `deployments.emulators.argocd`) holds its in-memory state, a Starlette app and a CLI.
"""
