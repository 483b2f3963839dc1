output "id" {
  description = "Database instance identifier."
  value       = aws_db_instance.this.identifier
}

output "address" {
  description = "Host name of the database."
  value       = aws_db_instance.this.address
}

output "port" {
  description = "Port of the database."
  value       = aws_db_instance.this.port
}

output "db_name" {
  description = "Name of the application database."
  value       = aws_db_instance.this.db_name
}

output "username" {
  description = "Master user name."
  value       = aws_db_instance.this.username
}

output "password_parameter_arn" {
  description = "ARN of the SecureString parameter that holds the master password."
  value       = aws_ssm_parameter.password.arn
}
