"""``python -m llm_events``: the same as the ``llm-events`` command."""

from .cli import main

if __name__ == "__main__":
    main(prog_name="llm-events")
