"""SQLite files a host's processes share, used from an event loop."""
