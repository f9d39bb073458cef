"""Prompt rendering: an AgentCall as the text a model reads, and its token estimates."""
