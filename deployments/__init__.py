"""gitops-flows: deployments."""
