"""gitops-flows: flows."""
