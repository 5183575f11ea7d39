"""Getting events in from elsewhere: `llm`'s logs.db and the JSONL export format."""
