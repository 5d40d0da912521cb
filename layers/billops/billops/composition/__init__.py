"""Composition roots: each function's objects, built once per container from its settings (billops.settings).

Handlers import from here and from Powertools, never from billops.storage: what a function is made of is decided
in one place, and the operator CLI builds the same objects (e.g. ``billops replay projector`` uses ``Projector``)
instead of wiring them again.
"""
