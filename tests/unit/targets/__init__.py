"""Unit tests of the pure parts of the targets: Envoy file formats and the local CA."""
