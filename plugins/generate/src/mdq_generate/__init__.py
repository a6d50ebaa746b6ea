"""mdq-generate: OpenAI-compatible completions under the live control state (see the plugin README)."""
