"""MoviEmotion command-line interface and shared settings."""
