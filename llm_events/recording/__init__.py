"""Recording: turns calls into events (the open call, redaction, durability settings)."""
