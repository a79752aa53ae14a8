"""The interop tier: tests that ask bbolt itself (a small Go helper) about files and traces."""
