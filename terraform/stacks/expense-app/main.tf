# The expense application on AWS: a VPC, the web service on ECS Fargate behind an application
# load balancer, a PostgreSQL database, and `worker_count` background worker tasks.
# Same inputs as the sandbox stack (terraform/stacks/sandbox), so one tfvars file per
# environment serves either stack.

locals {
  prefix     = "${var.application}-${var.environment}"
  production = var.environment == "prod"
  port       = 8080
}

module "network" {
  source = "../../modules/aws/network"

  name = local.prefix
  cidr = var.network_cidr
  tags = { Component = "network" }
}

module "lb" {
  source = "../../modules/aws/load_balancer"

  name        = local.prefix
  vpc_id      = module.network.vpc_id
  vpc_cidr    = module.network.cidr
  subnet_ids  = module.network.public_subnet_ids
  target_port = local.port
  tags        = { Component = "web" }
}

module "web" {
  source = "../../modules/aws/cluster"

  name           = local.prefix
  region         = var.region
  image          = var.image
  replicas       = var.replicas
  worker_count   = var.worker_count
  container_port = local.port

  vpc_id               = module.network.vpc_id
  subnet_ids           = module.network.public_subnet_ids
  lb_security_group_id = module.lb.security_group_id
  target_group_arn     = module.lb.target_group_arn

  environment = {
    APP_ENV = var.environment
    DB_HOST = module.db.address
    DB_PORT = tostring(module.db.port)
    DB_NAME = module.db.db_name
    DB_USER = module.db.username
  }
  secrets = {
    DB_PASSWORD = module.db.password_parameter_arn
  }

  tags = { Component = "web" }
}

module "db" {
  source = "../../modules/aws/database"

  name                       = "${local.prefix}${var.db_name_suffix}"
  vpc_id                     = module.network.vpc_id
  subnet_ids                 = module.network.private_subnet_ids
  allowed_security_group_ids = [module.web.security_group_id]
  password                   = var.db_password
  db_name                    = replace(var.application, "-", "_")
  multi_az                   = local.production
  deletion_protection        = local.production

  tags = { Component = "database" }
}
