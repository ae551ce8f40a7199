"""Adapters that feed response bytes from HTTP clients and SDK hooks into the decoders."""
