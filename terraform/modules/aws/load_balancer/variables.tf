variable "name" {
  description = "Name of the load balancer and its target group (at most 32 characters)."
  type        = string

  validation {
    condition     = length(var.name) <= 32
    error_message = "Load balancer and target group names are limited to 32 characters."
  }
}

variable "vpc_id" {
  description = "VPC the load balancer and its targets live in."
  type        = string
}

variable "vpc_cidr" {
  description = "IPv4 CIDR block of the VPC (where the load balancer may send traffic)."
  type        = string
}

variable "subnet_ids" {
  description = "Public subnets of the load balancer (at least two availability zones)."
  type        = list(string)
}

variable "target_port" {
  description = "Port the service's containers listen on."
  type        = number
  default     = 8080
}

variable "health_check_path" {
  description = "HTTP path the target group checks on each task."
  type        = string
  default     = "/healthz"
}

variable "certificate_arn" {
  description = "ACM certificate for an HTTPS listener on 443; null gives an HTTP listener on 80."
  type        = string
  default     = null
}

variable "allowed_cidr_blocks" {
  description = "Client networks allowed to reach the listener."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "tags" {
  description = "Tags of every resource (merged over the provider's default_tags)."
  type        = map(string)
  default     = {}
}
