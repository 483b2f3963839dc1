variable "name" {
  description = "Database name. Changing it replaces the database (and loses its data)."
  type        = string
}

variable "password" {
  description = "Master password."
  type        = string
  sensitive   = true
}

variable "tags" {
  description = "Tags of the database (merged over the provider's default_tags)."
  type        = map(string)
  default     = {}
}
