"""The seed's LLM interface: Prompt, LLMResult, LLMClient, ContextBuilder, with_retry,
PromptDB, LLMRouter, client_from_settings (re-exported by ``llm_events``)."""
