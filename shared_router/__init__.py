"""hybrid-llm core: route each query to a small or a large LLM by predicted difficulty."""
