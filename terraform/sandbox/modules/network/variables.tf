variable "name" {
  description = "Network name."
  type        = string
}

variable "cidr" {
  description = "IPv4 CIDR block of the network. Changing it replaces the network and everything in it."
  type        = string
  default     = "10.42.0.0/16"
}

variable "tags" {
  description = "Tags of the network (merged over the provider's default_tags)."
  type        = map(string)
  default     = {}
}
