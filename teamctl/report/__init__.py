"""teamctl's reports: the operator report, evaluations and experiments."""
