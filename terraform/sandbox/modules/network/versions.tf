terraform {
  required_version = ">= 1.0.0"

  required_providers {
    sandbox = {
      source  = "gitops/sandbox"
      version = ">= 0.1.0"
    }
  }
}
