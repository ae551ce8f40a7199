"""Decoders that turn raw response bytes into events and usage."""
