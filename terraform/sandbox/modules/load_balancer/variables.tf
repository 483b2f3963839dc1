variable "name" {
  description = "Load balancer name."
  type        = string
}

variable "service_id" {
  description = "Id of the service the load balancer forwards to."
  type        = string
}

variable "port" {
  description = "Listener port."
  type        = number
  default     = 443
}

variable "tags" {
  description = "Tags of the load balancer (merged over the provider's default_tags)."
  type        = map(string)
  default     = {}
}
