"""Versioned policies: the document schema, evaluation and the version store."""
