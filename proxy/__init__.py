"""Tollhouse's HTTP edge: an OpenAI-compatible API in front of governed upstreams."""
