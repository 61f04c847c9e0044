"""OpenAI wire models. Unknown fields are accepted on purpose and passed through."""
