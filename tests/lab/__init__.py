"""Multi-cluster kube-apiserver lab for the integration tests and the demo (see README.md)."""
