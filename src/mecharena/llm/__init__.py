"""LLM providers, structured output, LLM agents and the LLM designer (the ``llm`` extra)."""
