"""Tollhouse's domain core: configuration, storage, keys, audit and spend.

Imports no web framework; every other Tollhouse package depends on it.
"""
