variable "name" {
  description = "Service name."
  type        = string
}

variable "network_id" {
  description = "Id of the network the service runs in."
  type        = string
}

variable "image" {
  description = "Container image reference, e.g. registry.sandbox.internal/expense/api:1.4.2."
  type        = string
}

variable "replicas" {
  description = "Number of running copies."
  type        = number
  default     = 1

  validation {
    condition     = var.replicas >= 0 && floor(var.replicas) == var.replicas
    error_message = "The replicas value must be a whole number >= 0."
  }
}

variable "tags" {
  description = "Tags of the service (merged over the provider's default_tags)."
  type        = map(string)
  default     = {}
}
