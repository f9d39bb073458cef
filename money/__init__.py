"""Money: model prices, token usage and costs in exact micro-USD."""
