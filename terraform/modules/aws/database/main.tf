# A PostgreSQL instance in the private subnets, reachable only from the given security groups.
# The master password comes from a sensitive variable (Terraform masks it in plans and outputs)
# and is also stored as a SecureString parameter, so the service reads it at start-up instead of
# finding it in its task definition.

resource "aws_db_subnet_group" "this" {
  name        = var.name
  description = "Private subnets of database ${var.name}."
  subnet_ids  = var.subnet_ids

  tags = var.tags
}

resource "aws_security_group" "this" {
  name        = "${var.name}-db"
  description = "Database ${var.name}: PostgreSQL from the service only."
  vpc_id      = var.vpc_id

  ingress {
    description     = "PostgreSQL from the service"
    from_port       = 5432
    to_port         = 5432
    protocol        = "tcp"
    security_groups = var.allowed_security_group_ids
  }

  tags = merge(var.tags, { Name = "${var.name}-db" })
}

resource "aws_db_instance" "this" {
  identifier     = var.name
  engine         = "postgres"
  engine_version = var.engine_version
  instance_class = var.instance_class

  allocated_storage     = var.allocated_storage
  max_allocated_storage = var.allocated_storage * 4
  storage_type          = "gp3"
  storage_encrypted     = true

  db_name  = var.db_name
  username = var.username
  password = var.password
  port     = 5432

  db_subnet_group_name   = aws_db_subnet_group.this.name
  vpc_security_group_ids = [aws_security_group.this.id]
  publicly_accessible    = false
  multi_az               = var.multi_az

  backup_retention_period    = 7
  auto_minor_version_upgrade = true
  deletion_protection        = var.deletion_protection
  skip_final_snapshot        = !var.deletion_protection
  final_snapshot_identifier  = var.deletion_protection ? "${var.name}-final" : null
  copy_tags_to_snapshot      = true

  tags = var.tags
}

resource "aws_ssm_parameter" "password" {
  name        = "/${var.name}/password"
  description = "Master password of database ${var.name}."
  type        = "SecureString"
  value       = var.password

  tags = var.tags
}
