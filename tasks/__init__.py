"""gitops-flows: tasks."""
