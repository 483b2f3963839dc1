variable "name" {
  description = "Name of the cluster and prefix of its parts."
  type        = string
}

variable "region" {
  description = "AWS region (where the containers send their logs)."
  type        = string
}

variable "image" {
  description = "Container image the services run (what Argo CD deploys)."
  type        = string
}

variable "replicas" {
  description = "Number of web tasks."
  type        = number
  default     = 2
}

variable "worker_count" {
  description = "Number of background worker tasks (0: no worker service)."
  type        = number
  default     = 0
}

variable "worker_command" {
  description = "Command of the worker containers (the image's entry point runs it)."
  type        = list(string)
  default     = ["worker"]
}

variable "container_port" {
  description = "Port the web container listens on."
  type        = number
  default     = 8080
}

variable "cpu" {
  description = "CPU units of each task (Fargate sizes: 256, 512, 1024...)."
  type        = number
  default     = 256
}

variable "memory" {
  description = "Memory of each task in MiB (must fit the CPU size)."
  type        = number
  default     = 512
}

variable "environment" {
  description = "Plain environment variables of the containers (no secrets here)."
  type        = map(string)
  default     = {}
}

variable "secrets" {
  description = "Secret environment variables of the containers: name => SSM parameter ARN."
  type        = map(string)
  default     = {}
}

variable "vpc_id" {
  description = "VPC of the tasks."
  type        = string
}

variable "subnet_ids" {
  description = "Subnets of the tasks (public: the tasks get public IPs to pull images)."
  type        = list(string)
}

variable "lb_security_group_id" {
  description = "Security group of the load balancer (the only source admitted)."
  type        = string
}

variable "target_group_arn" {
  description = "Target group the web tasks register in."
  type        = string
}

variable "log_retention_days" {
  description = "How long the containers' logs are kept."
  type        = number
  default     = 30
}

variable "tags" {
  description = "Tags of every resource (merged over the provider's default_tags)."
  type        = map(string)
  default     = {}
}
