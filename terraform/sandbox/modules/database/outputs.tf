output "id" {
  description = "Database id."
  value       = sandbox_database.this.id
}

output "address" {
  description = "Host name of the database."
  value       = sandbox_database.this.address
}
