variable "environment" {
  description = "Environment name (dev, staging, prod...): the Environment tag and part of every name."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]*$", var.environment))
    error_message = "The environment must be lower-case letters, digits and dashes."
  }
}

variable "application" {
  description = "Application name: the Application tag and part of every name."
  type        = string
  default     = "expense"
}

variable "owner" {
  description = "Owning team: the Owner cost tag (the tag policy rejects an empty one)."
  type        = string
}

variable "image" {
  description = "Container image the service runs (what Argo CD deploys)."
  type        = string
}

variable "replicas" {
  description = "Number of copies of the web service."
  type        = number
  default     = 2
}

variable "worker_count" {
  description = "Number of background worker tasks (0 for a normal stack)."
  type        = number
  default     = 0
}

variable "network_cidr" {
  description = "IPv4 CIDR block of the network. Changing it replaces the network and the services."
  type        = string
  default     = "10.42.0.0/16"
}

variable "db_password" {
  description = "Master password of the database."
  type        = string
  sensitive   = true
}

variable "region" {
  description = "AWS region of the stack."
  type        = string
  default     = "us-east-1"
}

variable "db_name_suffix" {
  description = "Appended to the database's name. Changing it replaces the database (and its data)."
  type        = string
  default     = ""
}
