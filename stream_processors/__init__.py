"""stream_processors package."""
