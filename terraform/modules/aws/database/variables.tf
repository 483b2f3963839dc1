variable "name" {
  description = "Database identifier. Changing it replaces the database (and loses its data)."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the database."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets of the database (at least two availability zones)."
  type        = list(string)
}

variable "allowed_security_group_ids" {
  description = "Security groups allowed to connect on 5432."
  type        = list(string)
}

variable "password" {
  description = "Master password."
  type        = string
  sensitive   = true
}

variable "db_name" {
  description = "Name of the database created in the instance."
  type        = string
  default     = "app"
}

variable "username" {
  description = "Master user name."
  type        = string
  default     = "app"
}

variable "engine_version" {
  description = "PostgreSQL major version."
  type        = string
  default     = "16"
}

variable "instance_class" {
  description = "Instance class."
  type        = string
  default     = "db.t4g.micro"
}

variable "allocated_storage" {
  description = "Initial storage in GiB (autoscaling up to four times this)."
  type        = number
  default     = 20
}

variable "multi_az" {
  description = "Run a standby in a second availability zone."
  type        = bool
  default     = false
}

variable "deletion_protection" {
  description = "Refuse to delete the instance; when on, a destroy also takes a final snapshot."
  type        = bool
  default     = true
}

variable "tags" {
  description = "Tags of every resource (merged over the provider's default_tags)."
  type        = map(string)
  default     = {}
}
