"""A run's live stream: the log events land in, its publishers and its readers."""
