variable "name" {
  description = "Name of the VPC and prefix of its parts."
  type        = string
}

variable "cidr" {
  description = "IPv4 CIDR block of the VPC (at least a /16: subnets are carved as /24s). Changing it replaces everything in it."
  type        = string
  default     = "10.42.0.0/16"
}

variable "tags" {
  description = "Tags of every resource (merged over the provider's default_tags)."
  type        = map(string)
  default     = {}
}
