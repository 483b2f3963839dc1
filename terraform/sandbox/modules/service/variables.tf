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

  # No floor() here: terraform 1.0.3's floor panics now and then when many module instances
  # evaluate it at once ("index out of range" in the function implementation).
  validation {
    condition     = can(regex("^[0-9]+$", tostring(var.replicas)))
    error_message = "The replicas value must be a whole number >= 0."
  }
}

variable "tags" {
  description = "Tags of the service (merged over the provider's default_tags)."
  type        = map(string)
  default     = {}
}
